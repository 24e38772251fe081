"""How a worker's router follows a rollout: the weight per request, the aliases on a rollout event
or after the refresh period.

The registry is a stand-in that counts how often it is asked, and PostgreSQL's answer (``routing_state``)
is set by the test: what is tested is the router's decisions. tests/integration/test_rollout.py measures
a real worker following real rollout actions.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from adfame.repositories.deployments import RoutingState
from adfame.settings import Settings
from inference import routing
from inference.routing import ModelRouter, route_for

CHALLENGER_SEQ = next(s for s in range(1, 100) if route_for(s, 5) == "challenger")
CHAMPION_SEQ = next(s for s in range(1, 100) if route_for(s, 95) == "champion")


class Registry:
    def __init__(self, **versions: str) -> None:
        self.versions = versions
        self.asked = 0

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        self.asked += 1
        if alias not in self.versions:
            raise MlflowException(f"Registered model alias {alias} not found.", INVALID_PARAMETER_VALUE)
        return SimpleNamespace(name=name, version=self.versions[alias], source=f"runs:/r{alias}/lora")


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """What PostgreSQL says about the canary; the test changes ``state`` as a rollout would."""
    db = SimpleNamespace(state=RoutingState(None, 0, None))
    monkeypatch.setattr(routing, "routing_state", lambda engine, model, alias: db.state)
    return db


def _router(registry: Registry, refresh_s: float = 3600.0) -> ModelRouter:
    settings = Settings(registered_model="m", alias_refresh_s=refresh_s)
    return ModelRouter(settings, None, registry)  # type: ignore[arg-type]


def _routes(router: ModelRouter, *seqs: int) -> list[tuple[str, str | None]]:
    return [(route, version.version if version else None) for route, version in map(router.choose, seqs)]


def test_a_weight_change_applies_from_the_next_request(database: SimpleNamespace) -> None:
    router = _router(Registry(champion="3", challenger="4"))
    database.state = RoutingState("4", 5, 1)
    assert _routes(router, CHALLENGER_SEQ, CHAMPION_SEQ) == [("challenger", "4"), ("champion", "3")]
    database.state = RoutingState("4", 100, 1)  # a direct weight change, no new event: still followed
    assert _routes(router, CHAMPION_SEQ) == [("challenger", "4")]
    database.state = RoutingState(None, 0, 2)  # rolled back: no live canary
    assert _routes(router, CHALLENGER_SEQ) == [("champion", "3")]


def test_the_same_request_gets_the_same_route_on_redelivery(database: SimpleNamespace) -> None:
    router = _router(Registry(champion="3", challenger="4"))
    database.state = RoutingState("4", 25, 1)
    seqs = list(range(1, 200))
    assert _routes(router, *seqs) == _routes(router, *seqs)


def test_a_rollout_event_makes_the_router_reread_the_aliases_at_once(database: SimpleNamespace) -> None:
    registry = Registry(champion="3", challenger="4")
    router = _router(registry)
    database.state = RoutingState("4", 50, 7)
    router.choose(CHALLENGER_SEQ)
    asked = registry.asked
    router.choose(CHALLENGER_SEQ)
    assert registry.asked == asked, "no event, no refresh due: the cached aliases serve"
    registry.versions = {"champion": "4"}  # promoted
    database.state = RoutingState(None, 0, 8)
    assert _routes(router, CHALLENGER_SEQ, CHAMPION_SEQ) == [("champion", "4"), ("champion", "4")]


def test_an_alias_moved_by_hand_is_followed_after_the_refresh(database: SimpleNamespace) -> None:
    registry = Registry(champion="3")
    router = _router(registry, refresh_s=30)
    assert _routes(router, CHAMPION_SEQ) == [("champion", "3")]
    registry.versions = {"champion": "5"}
    assert _routes(router, CHAMPION_SEQ) == [("champion", "3")]
    router._aliases_at -= 31  # the refresh period has passed
    assert _routes(router, CHAMPION_SEQ) == [("champion", "5")]


def test_a_challenger_without_its_canary_gets_no_traffic(database: SimpleNamespace) -> None:
    router = _router(Registry(champion="3", challenger="9"))
    database.state = RoutingState("4", 100, 1)  # the live canary is another version
    assert _routes(router, CHALLENGER_SEQ, CHAMPION_SEQ) == [("champion", "3"), ("champion", "3")]
    database.state = RoutingState(None, 0, 1)
    assert _routes(router, CHALLENGER_SEQ) == [("champion", "3")]


def test_without_a_champion_the_base_model_serves_the_champions_share(database: SimpleNamespace) -> None:
    router = _router(Registry(challenger="4"))
    database.state = RoutingState("4", 5, 1)
    assert _routes(router, CHALLENGER_SEQ, CHAMPION_SEQ) == [("challenger", "4"), ("base", None)]
