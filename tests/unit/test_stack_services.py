"""What a stack service knows is found, not left behind by an earlier call (no servers needed).

A fresh service's ``command()`` either finds its installed binaries or says to run
`adfame stack install`; it never depends on ``install()`` having run first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adfame.settings import PROJECT_ROOT, Settings
from adfame.stack import StackError, install
from adfame.stack.manager import Stack
from adfame.stack.services import (
    SERVICE_CLASSES,
    Kafka,
    ObjectStoreServer,
    Postgres,
    SparkMaster,
    SparkWorker,
    dag_bundles,
)

INSTALL_HINT = "adfame stack install"


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, state_dir=tmp_path / "state")


@pytest.mark.parametrize("service_class", SERVICE_CLASSES, ids=lambda cls: cls.name)
def test_a_fresh_service_has_a_command_or_says_how_to_install(service_class, settings) -> None:
    service = service_class(settings)
    try:
        command = service.command()
    except StackError as error:
        assert INSTALL_HINT in str(error)
    else:
        assert command and all(isinstance(part, str) for part in command)


@pytest.mark.parametrize("service_class", [ObjectStoreServer, Kafka], ids=lambda cls: cls.name)
def test_binaries_missing_from_the_cache_name_the_install_command(service_class, tmp_path) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path / "state", cache_dir=tmp_path / "empty-cache")
    with pytest.raises(StackError, match=INSTALL_HINT):
        service_class(settings).command()


def test_missing_postgres_names_the_install_command(settings, monkeypatch) -> None:
    monkeypatch.setattr(install, "postgres_bindir", lambda: None)
    with pytest.raises(StackError, match=INSTALL_HINT):
        Postgres(settings).command()


def test_extra_dag_folders_become_bundles_beside_the_dags_folder(tmp_path) -> None:
    folder = PROJECT_ROOT / "tests" / "dags"
    settings = Settings(_env_file=None, state_dir=tmp_path, extra_dag_folders=[folder])
    bundles = dag_bundles(settings)
    assert [bundle["name"] for bundle in bundles] == ["dags-folder", "tests-dags"]
    assert bundles[0]["kwargs"] == {}
    assert bundles[1]["kwargs"] == {"path": str(folder)}
    json.dumps(bundles)  # Airflow reads it as JSON from AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST


def test_airflow_runs_local_executor_beside_the_edge_executor_and_serves_the_edge_api(settings) -> None:
    from adfame.stack.services import AIRFLOW_EXECUTORS, airflow_environment

    env = airflow_environment(settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == AIRFLOW_EXECUTORS
    assert AIRFLOW_EXECUTORS.split(",")[0] == "LocalExecutor"  # the default of every other task
    assert AIRFLOW_EXECUTORS.split(",")[1].rsplit(".", 1)[1] == settings.gpu_executor
    assert env["AIRFLOW__EDGE__API_ENABLED"] == "True"
    assert env["AIRFLOW__EDGE__API_URL"] == f"{settings.airflow_url}/edge_worker/v1/rpcapi"


def test_the_edge_worker_serves_the_gpu_queue_under_its_name_with_a_log_folder_of_its_own(settings) -> None:
    from adfame.stack.services import AirflowEdgeWorker

    worker = AirflowEdgeWorker(settings)
    command = worker.command()
    assert command[1:3] == ["edge", "worker"]
    assert command[command.index("--queues") + 1] == settings.gpu_queue
    assert command[command.index("--edge-hostname") + 1] == settings.edge_worker_name
    assert command[command.index("--concurrency") + 1] == str(settings.edge_worker_concurrency)
    assert not worker.optional and worker.ports() == []  # it serves nothing: it polls the API server
    assert worker.environment()["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == str(worker.dir / "logs")


def test_the_scheduler_serves_no_task_logs(settings) -> None:
    from adfame.stack.services import AirflowScheduler

    scheduler = AirflowScheduler(settings)
    assert "--skip-serve-logs" in scheduler.command() and scheduler.ports() == []


def test_no_two_services_default_to_one_port(monkeypatch, tmp_path) -> None:
    """Spark's own defaults (web UIs on 8080 and 8081) are Airflow's and SeaweedFS's here."""
    for key in [key for key in os.environ if key.endswith("_PORT") and key.startswith("ADFAME_")]:
        monkeypatch.delenv(key)  # the defaults, not the suite's profile
    defaults = Settings(_env_file=None, state_dir=tmp_path)
    ports = [port for cls in SERVICE_CLASSES for port in cls(defaults).ports()]
    assert len(ports) == len(set(ports)), sorted(ports)


def test_the_suite_profile_gives_every_port_its_own_number() -> None:
    from dotenv import dotenv_values

    profile = dotenv_values(PROJECT_ROOT / "tests" / "stack.env")
    ports = {key: value for key, value in profile.items() if key.endswith("_PORT")}
    assert len(set(ports.values())) == len(ports), ports


def test_the_spark_cluster_binds_to_host_and_the_worker_joins_its_master(settings) -> None:
    master, worker = SparkMaster(settings), SparkWorker(settings)
    for daemon in (master, worker):
        command = daemon.command()
        assert command[command.index("--host") + 1] == settings.host
        # Spark's web UIs and the executors a worker starts bind to SPARK_LOCAL_IP, else every interface.
        assert daemon.environment()["SPARK_LOCAL_IP"] == settings.host
        assert command[command.index("--properties-file") + 1] == str(daemon.properties_file)
    assert master.url() == worker.command()[-1] == f"spark://{settings.host}:{settings.spark_master_port}"
    assert master.properties() == {"spark.master.rest.enabled": "false"}
    command = worker.command()
    assert command[command.index("--cores") + 1] == str(settings.spark_worker_cores)
    assert command[command.index("--memory") + 1] == settings.spark_worker_memory


def test_the_spark_cluster_starts_only_when_named(settings) -> None:
    stack = Stack(settings)
    both = ["spark-master", "spark-worker"]
    assert [svc.name for svc in stack.select(["spark"])] == both
    assert [svc.name for svc in stack.select(["spark-worker"])] == both  # the worker needs its master
    assert not set(both) & {svc.name for svc in stack.select(None)}
    with pytest.raises(StackError, match=r"unknown service sparks; known: .*, spark$"):
        stack.select(["sparks"])


def test_the_command_line_names_every_service_the_stack_starts_by_default(settings) -> None:
    from adfame.cli import PLATFORM_SERVICES

    assert list(PLATFORM_SERVICES) == [cls.name for cls in SERVICE_CLASSES if not cls.optional]
