"""Integration tests run against the real local stack; they stop at once, clearly, when it is not up."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from adfame import health
from adfame.settings import Settings, get_settings

_PROBES = {
    "postgres": health.postgres,
    "object store": health.object_store,
    "kafka": health.kafka,
    "mlflow": health.mlflow,
    "airflow": health.airflow_api,
}


@pytest.fixture(scope="session", autouse=True)
def stack_is_up() -> None:
    down = {name: probe.detail for name, fn in _PROBES.items() if not (probe := fn()).ok}
    if down:
        pytest.fail(
            f"the local stack is not healthy ({down}); start it with `adfame stack up` "
            "or run the suite with `make test`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def train_lora() -> Callable[..., Path]:
    """The unit tests' LoRA maker (tests/ is not a package, so its module is loaded by path)."""
    path = Path(__file__).resolve().parents[1] / "unit" / "inference" / "lora_fixtures.py"
    spec = importlib.util.spec_from_file_location("lora_fixtures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train_lora
