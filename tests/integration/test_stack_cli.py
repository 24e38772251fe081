"""`adfame stack` and `adfame env` against the running stack, through the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adfame.cli import PLATFORM_SERVICES
from adfame.stack.process import PidFile

pytestmark = pytest.mark.integration

ADFAME = str(Path(sys.executable).parent / "adfame")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def test_status_lists_every_service_healthy_with_its_url(settings) -> None:
    result = run(ADFAME, "stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in PLATFORM_SERVICES:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert " healthy " in line
    assert settings.airflow_url in result.stdout and settings.mlflow_url in result.stdout


def test_native_tools_work_after_eval_env(settings) -> None:
    script = f"""
    set -e
    eval "$({ADFAME} env)"
    psql -tAc "select current_database()"
    kafka-topics --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --list
    python -c "import boto3; print(sorted(b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']))"
    airflow dags list -o plain
    """
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert settings.app_db in out
    assert "adfame.prompts" in out and "adfame.prompts.dlq" in out
    assert "adfame-videos" in out
    assert "platform_healthcheck" in out


def test_up_restarts_only_the_killed_service(settings) -> None:
    victim = "airflow-triggerer"
    pidfile = PidFile(settings.state_dir / victim / "pid")
    proc = pidfile.process()
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pidfile.process() is not None and time.monotonic() < deadline:
        time.sleep(0.2)

    status = run(ADFAME, "stack", "status")
    assert status.returncode == 1
    assert any(line.startswith(victim) and "stopped" in line for line in status.stdout.splitlines())

    result = run(ADFAME, "stack", "up")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"started: {victim}\n" in result.stdout
    assert run(ADFAME, "stack", "status").returncode == 0


def test_worker_and_api_start_only_when_named(settings) -> None:
    from inference.model import init_default_model

    init_default_model(settings)  # the worker serves the published base model
    try:
        result = run(ADFAME, "stack", "up", "worker", "api")
        assert result.returncode == 0, result.stderr[-2000:]
        status = run(ADFAME, "stack", "status")
        rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
        assert status.returncode == 0, status.stdout
        assert " healthy " in rows["worker"] and "1 member(s)" in rows["worker"]
        assert " healthy " in rows["api"]
    finally:
        down = run(ADFAME, "stack", "down", "worker", "api")
    assert down.returncode == 0 and "worker" in down.stdout
    rows = {line.split()[0]: line for line in run(ADFAME, "stack", "status").stdout.splitlines()[1:]}
    assert " off " in rows["worker"] and " off " in rows["api"]
