"""Integration tests run on the suite's own real stack (tests/stack.env), which they start themselves.

Like testcontainers, the session starts what of that stack is not running and stops, at the end,
exactly what it started; a stack someone else runs (`make demo`'s) is never reached. Set
``ADFAME_TEST_KEEP_STACK=1`` to keep the suite's stack running between runs while developing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from adfame import db, health
from adfame.settings import Settings, get_settings

_PROBES = {
    "postgres": health.postgres,
    "object store": health.object_store,
    "kafka": health.kafka,
    "mlflow": health.mlflow,
    "airflow": health.airflow_api,
}
# The optional services the suite's stack also runs when its profile points nightly_etl at the stack's
# own Spark cluster (tests/stack.env does): the end-to-end nightly_etl test then runs its Spark jobs there.
_SPARK_PROBES = {"spark master": health.spark_master, "spark worker": health.spark_worker}


def _runs_on_the_stacks_cluster(settings: Settings) -> bool:
    return settings.spark_master == settings.spark_cluster_url


ADFAME = str(Path(sys.executable).parent / "adfame")


@pytest.fixture(scope="session", autouse=True)
def suite_stack(stack_environment: dict[str, str]) -> Iterator[None]:
    """The suite's stack, up and healthy for the whole session; stops only what this session started."""
    from adfame.stack.manager import Stack

    stack = Stack(get_settings())
    running = {row.name for row in stack.status() if row.pid is not None}
    names = [svc.name for svc in stack.select(None)]
    probes = dict(_PROBES)
    if _runs_on_the_stacks_cluster(get_settings()):
        names += ["spark-master", "spark-worker"]
        probes |= _SPARK_PROBES
    result = subprocess.run(
        [ADFAME, "stack", "up", *names], env=stack_environment, capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        pytest.fail(f"the test stack did not start:\n{result.stdout}{result.stderr[-3000:]}", pytrace=False)
    down = {name: probe.detail for name, fn in probes.items() if not (probe := fn()).ok}
    if down:
        pytest.fail(f"the test stack is not healthy ({down})", pytrace=False)
    started = [name for name in names if name not in running]
    yield
    if started and os.environ.get("ADFAME_TEST_KEEP_STACK") != "1":
        stack.down(started)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def spark_on_the_stacks_cluster(settings: Settings) -> bool:
    """Whether the Spark jobs of the stack's DAGs run on the stack's Spark standalone cluster (the suite
    started it) rather than in local mode inside their tasks."""
    return _runs_on_the_stacks_cluster(settings)


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
