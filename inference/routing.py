"""Canary routing: which model alias serves a request (docs/canary.md#routing).

A request's route follows from its ``route_seq``, the number ``generation_requests`` gave its row at
insert: deterministic, so a redelivered request goes to the same model. ``bucket_of`` maps the number
to 0..99 by the golden ratio's multiples (a Weyl sequence), so any 100 consecutive requests put the
challenger within 2 points of its weight, where a random hash strays by more than 5 points a third of
the time at 50 %. ``route_for`` is the rule; ``ModelRouter`` applies it to what the registry (which
versions carry the aliases) and the deployments table (the live canary and its weight) say now.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine

from adfame.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS
from adfame.repositories.deployments import routing_state
from adfame.settings import Settings

if TYPE_CHECKING:
    from inference.model import ModelVersionRef

log = logging.getLogger(__name__)
Route = Literal["champion", "challenger"]
BASE_ROUTE = "base"
# frac(n * 0.6180339887...) in 64-bit fixed point: round(2**64 / golden ratio), Knuth's Fibonacci hashing.
# Integer arithmetic makes the bucket exact and the same on every machine, however large n grows.
_GOLDEN_FRACTION = 0x9E3779B97F4A7C15
_MASK_64 = (1 << 64) - 1


class RegistryUnavailable(RuntimeError):
    """The model registry could not be asked which versions carry the aliases."""


def bucket_of(route_seq: int) -> int:
    """floor(100 * frac(route_seq * golden ratio conjugate)): a number in [0, 100) for the request."""
    return (((route_seq * _GOLDEN_FRACTION) & _MASK_64) * 100) >> 64


def route_for(route_seq: int, challenger_weight: int) -> Route:
    """``challenger`` for ``challenger_weight`` % of requests, else ``champion``.

    A request in the canary stays there as the weight grows (its bucket is below every larger weight).
    """
    if not 0 <= challenger_weight <= 100:
        raise ValueError(f"challenger weight must be within 0..100, got {challenger_weight}")
    return "challenger" if bucket_of(route_seq) < challenger_weight else "champion"


class ModelRouter:
    """Picks the route and registry version of each request for one worker.

    The registry's answer is cached for ``alias_refresh_s`` seconds (a setting): asking MLflow per request
    would add a round trip to every generation, and aliases move only on a rollout step. Each request
    asks PostgreSQL, in one round trip, for the live canary's version and weight and for the id of the
    model's latest deployment event: a weight change applies from the next request, and a rollout action
    (which moves aliases and appends an event) makes the router re-read the aliases at once. Only an alias
    moved by hand in MLflow waits for the refresh. The weight applies only while the challenger alias
    names the live canary's version: a version given the alias by hand gets no traffic until a canary
    starts on it.
    """

    def __init__(self, settings: Settings, engine: Engine, registry: Any = None) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry  # an MlflowClient, or None to serve the base model only
        self._aliases: dict[str, ModelVersionRef | None] | None = None  # None until the registry answered
        self._aliases_at = 0.0
        self._last_event_id: int | None = None  # the latest rollout action the aliases were read after

    def aliases(self, refresh: bool = False) -> dict[str, ModelVersionRef | None]:
        """The registry's champion and challenger versions, re-read every ``alias_refresh_s`` seconds or when
        ``refresh`` asks for it.

        While the registry cannot be reached, the versions it named last keep serving.
        """
        from mlflow.exceptions import MlflowException

        from inference.model import resolve_alias

        if self.registry is None:
            return {}
        due = time.monotonic() - self._aliases_at > self.settings.alias_refresh_s
        if self._aliases is None or due or refresh:
            try:
                self._aliases = {
                    alias: resolve_alias(self.registry, alias, self.settings.registered_model)
                    for alias in (CHAMPION_ALIAS, CHALLENGER_ALIAS)
                }
            except (MlflowException, OSError) as exc:  # OSError: the HTTP client's connection errors
                if self._aliases is None:
                    raise RegistryUnavailable(f"model registry unreachable: {exc}") from exc
                log.warning("model registry unreachable (%s): serving the versions it named last", exc)
            self._aliases_at = time.monotonic()
        return self._aliases

    def choose(self, route_seq: int) -> tuple[str, ModelVersionRef | None]:
        """The request's route and the version serving it: ``base`` and None when no version has the alias."""
        if self.registry is None:
            return BASE_ROUTE, None
        state = routing_state(self.engine, self.settings.registered_model, CHALLENGER_ALIAS)
        versions = self.aliases(refresh=state.last_event_id != self._last_event_id)
        self._last_event_id = state.last_event_id
        challenger = versions.get(CHALLENGER_ALIAS)
        route: str = CHAMPION_ALIAS
        if challenger is not None and challenger.version == state.canary_version:
            route = route_for(route_seq, state.canary_weight)
        version = versions.get(route)
        return (route if version is not None else BASE_ROUTE), version
