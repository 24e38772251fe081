"""Bad configuration gives one clear line naming what is wrong, never a traceback (no services needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adfame.settings import Settings
from adfame.stack.services import SERVICE_CLASSES

ADFAME = str(Path(sys.executable).parent / "adfame")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def isolated_env(tmp_path) -> dict[str, str]:
    """A state folder of its own and ports nothing listens on, so the real stack is never touched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADFAME_")}
    env["ADFAME_STATE_DIR"] = str(tmp_path / "state")
    for name in (
        "POSTGRES",
        "KAFKA",
        "KAFKA_CONTROLLER",
        "S3",
        "MLFLOW",
        "AIRFLOW",
        "SEAWEEDFS_MASTER",
        "SEAWEEDFS_VOLUME",
        "SEAWEEDFS_FILER",
    ):
        env[f"ADFAME_{name}_PORT"] = str(free_port())
    return env


def isolated_settings(env: dict[str, str]) -> Settings:
    overrides = {k.removeprefix("ADFAME_").lower(): v for k, v in env.items() if k.startswith("ADFAME_")}
    return Settings(_env_file=None, **overrides)


def test_port_taken_names_the_service_and_port(isolated_env) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        isolated_env["ADFAME_POSTGRES_PORT"] = str(port)
        result = subprocess.run(
            [ADFAME, "stack", "up", "postgres"], env=isolated_env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"postgres cannot start: port {port}" in result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_java_is_named(isolated_env) -> None:
    isolated_env.pop("JAVA_HOME", None)
    isolated_env["PATH"] = str(Path(sys.executable).parent)  # the venv, and no java
    result = subprocess.run(
        [ADFAME, "stack", "up", "kafka"], env=isolated_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Kafka needs Java 17 or newer" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_of_a_stack_that_is_not_running_fails(isolated_env) -> None:
    result = subprocess.run(
        [ADFAME, "stack", "status"], env=isolated_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    platform = [cls for cls in SERVICE_CLASSES if not cls.optional]  # the optional ones are "off"
    assert result.stdout.count("stopped") == len(platform)


def test_unknown_service_is_named(isolated_env) -> None:
    result = subprocess.run(
        [ADFAME, "stack", "up", "redis"], env=isolated_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "unknown service redis" in result.stderr


def test_unreachable_object_store(isolated_env) -> None:
    from adfame.storage import ObjectStore, ObjectStoreError

    store = ObjectStore(isolated_settings(isolated_env), retries=1)
    with pytest.raises(ObjectStoreError, match=r"unreachable.*adfame stack status"):
        store.list_buckets()


def test_unreachable_kafka(isolated_env) -> None:
    from adfame.messaging import MessagingError, create_producer

    with pytest.raises(MessagingError, match="not reachable"):
        create_producer(isolated_settings(isolated_env), bootstrap_timeout_ms=1000)


def test_unreachable_airflow(isolated_env) -> None:
    from adfame.airflow_client import AirflowClient, AirflowError

    with (
        AirflowClient(isolated_settings(isolated_env)) as client,
        pytest.raises(AirflowError, match="not reachable"),
    ):
        client.health()


def test_unreachable_database(isolated_env) -> None:
    from adfame import db

    engine = db.create_engine_for(isolated_settings(isolated_env))
    with pytest.raises(db.DatabaseUnavailable, match="adfame stack up"):
        db.upgrade(engine)
