"""A worker's router's view of the registry: which versions carry the aliases, and an outage of it.

The registry here is a stand-in with the two answers of MLflow's client that the router relies on (a
version, or "alias not found") and a switch for the registry being unreachable: what is tested is the
router's caching, not MLflow (tests/integration/test_worker.py serves real registry versions).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from adfame.settings import Settings
from inference.model import ModelVersionRef
from inference.routing import ModelRouter, RegistryUnavailable


class Registry:
    def __init__(self) -> None:
        self.versions: dict[str, str] = {}
        self.reachable = True

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        if not self.reachable:
            raise MlflowException("API request to http://127.0.0.1:5000 failed: Connection refused")
        if alias not in self.versions:
            raise MlflowException(f"Registered model alias {alias} not found.", INVALID_PARAMETER_VALUE)
        return SimpleNamespace(name=name, version=self.versions[alias], source=f"runs:/r{alias}/lora")


def _router(registry: Registry) -> ModelRouter:
    """A router with its registry only: aliases() touches nothing else."""
    settings = Settings(registered_model="adfame-unit")
    return ModelRouter(settings, None, registry)  # type: ignore[arg-type]


def _refresh_due(router: ModelRouter) -> None:
    router._aliases_at = 0.0


def test_aliases_name_the_versions_and_none_where_no_version_has_the_alias() -> None:
    registry = Registry()
    registry.versions = {"champion": "3"}
    router = _router(registry)
    assert router.aliases() == {
        "champion": ModelVersionRef("adfame-unit", "3", "runs:/rchampion/lora"),
        "challenger": None,
    }
    registry.versions = {"champion": "4"}
    assert router.aliases()["champion"].version == "3"  # cached until the refresh is due
    _refresh_due(router)
    assert router.aliases()["champion"].version == "4"


def test_unreachable_registry_keeps_the_versions_it_named_last(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()
    registry.versions = {"champion": "3", "challenger": "5"}
    router = _router(registry)
    before = router.aliases()
    registry.reachable = False
    _refresh_due(router)
    with caplog.at_level(logging.WARNING, logger="inference.routing"):
        assert router.aliases() == before
    assert "model registry unreachable" in caplog.text and "Connection refused" in caplog.text


def test_unreachable_registry_before_its_first_answer_is_a_service_failure() -> None:
    registry = Registry()
    registry.reachable = False
    router = _router(registry)
    with pytest.raises(RegistryUnavailable, match="Connection refused"):
        router.aliases()
    registry.reachable = True
    registry.versions = {"challenger": "2"}
    assert router.aliases()["challenger"].version == "2"  # asked again at once, not after the refresh


def test_without_a_registry_the_base_model_serves() -> None:
    router = ModelRouter(Settings(), None)  # type: ignore[arg-type]
    assert router.aliases() == {}
