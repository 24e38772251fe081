"""Integration tests run on the suite's own real stack (tests/stack.env), which they start themselves.

Like testcontainers, the session starts what of that stack is not running and stops, at the end,
exactly what it started; a stack someone else runs (`make demo`'s) is never reached. Set
``ADFAME_TEST_KEEP_STACK=1`` to keep the suite's stack running between runs while developing.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from adfame import db
from adfame.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def _on_the_suite_stack(suite_stack: None) -> None:
    """Every test here runs on the suite's stack (``suite_stack`` in tests/conftest.py: one per session)."""


@pytest.fixture(scope="session")
def spark_on_the_stacks_cluster(settings: Settings) -> bool:
    """Whether the Spark jobs of the stack's DAGs run on the stack's Spark standalone cluster (the suite
    started it) rather than in local mode inside their tasks."""
    return settings.spark_master == settings.spark_cluster_url


@pytest.fixture(scope="module")
def new_database(settings: Settings) -> Iterator[Callable[..., Engine]]:
    """A factory of uniquely named databases, empty or ``migrated``, all dropped at the end of the module.

    A test that counts or lists rows gets a database of its own, so other tests' rows (and the
    stack's app database) never interfere; they are created over an AUTOCOMMIT admin connection.
    """
    admin = db.create_engine_for(settings, database="postgres").execution_options(
        isolation_level="AUTOCOMMIT"
    )
    created: list[tuple[str, Engine]] = []

    def make(migrated: bool = False) -> Engine:
        name = f"adfame_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = db.create_engine_for(settings, database=name)
        created.append((name, engine))
        if migrated:
            db.upgrade(engine)
        return engine

    yield make
    for name, engine in created:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def engine(new_database: Callable[..., Engine]) -> Engine:
    """This module's own migrated database (never the stack's app database)."""
    return new_database(migrated=True)


@pytest.fixture(scope="module")
def api_url(settings: Settings, engine: Engine) -> Iterator[str]:
    """The REST API over this module's database, served by uvicorn on a free port; its base URL."""
    from api_support import served

    from inference.api import create_app

    with served(create_app(settings, engine=engine)) as url:
        yield url


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
