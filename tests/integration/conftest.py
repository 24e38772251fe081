"""Integration tests run against the real local stack; they stop at once, clearly, when it is not up."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class RegistryLora:
    """A registered model of the test's own, and an MLflow run holding a real LoRA under ``lora``."""

    client: Any  # MlflowClient
    name: str
    run_id: str

    def add_version(self, folder: str = "lora") -> str:
        """A version whose files are the run's ``folder``; returns its number."""
        source = f"runs:/{self.run_id}/{folder}"
        return str(self.client.create_model_version(self.name, source=source, run_id=self.run_id).version)


@pytest.fixture()
def registry_lora(
    settings: Settings, tmp_path: Path, train_lora: Callable[..., Path]
) -> Iterator[RegistryLora]:
    """A LoRA trained a few steps on the published tiny-wan, logged to MLflow; the model is deleted after."""
    import mlflow

    from adfame.mlflow_setup import configure_mlflow
    from adfame.storage import ObjectStore
    from inference.model import init_default_model, resolve_source

    store = ObjectStore(settings)
    model_dir = resolve_source(init_default_model(settings, store), store=store)
    lora_dir = train_lora(model_dir, tmp_path / "registry-lora", target=1.0, rank=4)
    client = configure_mlflow(settings)
    mlflow.set_experiment(f"adfame-test-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(lora_dir), artifact_path="lora")
    name = f"adfame-test-lora-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    try:
        yield RegistryLora(client, name, run.info.run_id)
    finally:
        client.delete_registered_model(name)
