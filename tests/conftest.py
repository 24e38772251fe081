"""Shared test set-up: the suite's own stack profile, and Airflow must not write to ~/airflow.

``tests/stack.env`` is applied to the environment before anything reads settings, so every test,
and every process a test starts, talks to the suite's own stack (its own state folder and ports),
never to the stack a user started with `make demo`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dotenv import dotenv_values

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from adfame.settings import Settings
    from devkit.fault_report import FaultReport

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _from_project_root(key: str, value: str) -> str:
    """The profile's folders are relative to the project; a child process may run elsewhere."""
    if key.endswith("_DIR"):
        return str(PROJECT_ROOT / value)
    if key.endswith("_FOLDERS"):
        return json.dumps([str(PROJECT_ROOT / folder) for folder in json.loads(value)])
    return value


# ADFAME_TEST_STACK_ENV names another profile (other ports and state folder), so two checkouts can run
# their suites side by side on one machine.
PROFILE_FILE = Path(os.environ.get("ADFAME_TEST_STACK_ENV") or Path(__file__).with_name("stack.env"))
STACK_PROFILE = {
    key: _from_project_root(key, value)
    for key, value in dotenv_values(PROFILE_FILE).items()
    if value is not None
}
os.environ.update(STACK_PROFILE)
# What the suite's stack is started with: the caller's environment and the profile, without the
# in-process Airflow settings below (a scheduler in unit-test mode would not run tasks).
STACK_ENVIRONMENT = dict(os.environ)

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="adfame-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# The stack's executors, so DAGs parsed in-process validate their tasks' executors as the stack does
# (imported only now: nothing of the project may read settings before the profile is applied).
from adfame.stack.services import AIRFLOW_EXECUTORS  # noqa: E402

os.environ.setdefault("AIRFLOW__CORE__EXECUTOR", AIRFLOW_EXECUTORS)
# py4j logs from its atexit hook after pytest has closed the streams; that line is noise.
logging.getLogger("py4j").setLevel(logging.WARNING)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` run where a CUDA device is, and are skipped, saying so, everywhere else."""
    cuda_tests = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_tests:
        return
    import torch  # only when a cuda test was collected: most runs never need it here

    if torch.cuda.is_available():
        return
    for item in cuda_tests:
        item.add_marker(pytest.mark.skip(reason="no CUDA device here (marked cuda)"))


@pytest.fixture(scope="session")
def stack_environment() -> dict[str, str]:
    """The environment the suite's own stack is started with (the profile applied, no test-only Airflow)."""
    return STACK_ENVIRONMENT


def _suite_services(settings: Settings) -> tuple[list[str], dict[str, Callable[[], Any]]]:
    """The services the suite's stack runs and the probes that must pass before a test starts.

    The optional Spark cluster joins them when the profile points nightly_etl at the stack's own cluster
    (tests/stack.env does): the end-to-end nightly_etl test then runs its Spark jobs there.
    """
    from adfame import health
    from adfame.stack.manager import Stack

    names = [svc.name for svc in Stack(settings).select(None)]
    probes = {
        "postgres": health.postgres,
        "object store": health.object_store,
        "kafka": health.kafka,
        "mlflow": health.mlflow,
        "airflow": health.airflow_api,
    }
    if settings.spark_master == settings.spark_cluster_url:
        names += ["spark-master", "spark-worker"]
        probes |= {"spark master": health.spark_master, "spark worker": health.spark_worker}
    return names, probes


@pytest.fixture(scope="session")
def suite_stack(stack_environment: dict[str, str]) -> Iterator[None]:
    """The suite's stack, up and healthy for the whole session; stops only what this session started.

    Defined here, once, so that tests/integration, tests/reliability and tests/security share one
    instance (each directory's conftest makes it autouse); unit tests never ask for it.
    """
    from adfame.settings import get_settings
    from adfame.stack.manager import Stack

    stack = Stack(get_settings())
    running = {row.name for row in stack.status() if row.pid is not None}
    names, probes = _suite_services(get_settings())
    adfame = str(Path(sys.executable).parent / "adfame")
    result = subprocess.run(
        [adfame, "stack", "up", *names], env=stack_environment, capture_output=True, text=True, timeout=900
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
    """The suite's settings (tests/stack.env applied)."""
    from adfame.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole run: a JVM start costs seconds, and the machine has 2 cores."""
    from spark_jobs.session import get_spark  # lazily: tests without Spark never start a JVM

    session = get_spark("adfame-tests", master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def design_tables() -> frozenset[str]:
    """The schema design's tables: the migration files must create each, and a migrated database hold it."""
    return frozenset(
        {
            "etl_runs",
            "dataset_clips",
            "dataset_snapshots",
            "generation_requests",
            "candidates",
            "selections",
            "retrain_milestones",
            "deployments",
            "monitoring_metrics",
            "drift_reports",
            "dashboard_stats",
            "model_evaluations",
        }
    )


@pytest.fixture(scope="session")
def killed_training_retrain(suite_stack: None) -> FaultReport:
    """The suite's one end-to-end run of retrain_on_feedback, with its training task SIGKILLed mid-run and
    retried (fault (g), ``devkit.fault_training``): tests/integration/test_retrain_dag.py checks the run,
    tests/reliability/test_training_task_killed.py its ledger. One run for both keeps CI's time down."""
    from devkit.fault_training import training_task_killed

    return training_task_killed()
