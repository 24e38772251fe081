"""`adfame stack` and `adfame env` against the running stack, through the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from adfame.cli import PLATFORM_SERVICES
from adfame.stack.process import PidFile
from adfame.waiting import wait_for

pytestmark = pytest.mark.integration

ADFAME = str(Path(sys.executable).parent / "adfame")


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture()
def run(stack_environment: dict[str, str]) -> Run:
    """Commands as a user types them against the suite's stack: its profile, none of the in-process
    Airflow test settings (a service restarted here must run as `adfame stack up` starts it)."""

    def run_command(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env=stack_environment, capture_output=True, text=True, timeout=timeout)

    return run_command


def service_rows(status_output: str) -> dict[str, str]:
    """The status table's rows by service (the login guide follows the table after a blank line)."""
    table = status_output.split("\n\n")[0].splitlines()[1:]
    return {line.split()[0]: line for line in table}


def test_status_lists_every_service_healthy_with_its_url(settings, run: Run) -> None:
    result = run(ADFAME, "stack", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in PLATFORM_SERVICES:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert " healthy " in line
    assert settings.airflow_url in result.stdout and settings.mlflow_url in result.stdout


def test_status_says_how_to_log_in_to_each_ui(settings, run: Run) -> None:
    out = run(ADFAME, "stack", "status").stdout
    guide = out[out.index("How to log in:") :]
    airflow = f"user {settings.airflow_user}, password {settings.airflow_password.get_secret_value()}"
    assert settings.airflow_url in guide and airflow in guide
    assert settings.mlflow_url in guide and "no login" in guide
    assert f"access key {settings.s3_access_key}" in guide and str(settings.secrets_path) in guide
    assert "adfame api-key create" in guide
    assert settings.s3_secret_key.get_secret_value() not in out


def test_env_exports_the_airflow_login_that_airflow_accepts(settings, run: Run) -> None:
    log_in = (
        "import os, httpx; login = {'username': os.environ['AIRFLOW_USERNAME'], "
        "'password': os.environ['AIRFLOW_PASSWORD']}; "
        f"print(httpx.post('{settings.airflow_url}/auth/token', json=login, timeout=10).status_code)"
    )
    script = f'set -e; eval "$({ADFAME} env)"; python -c "{log_in}"'
    result = run("bash", "-c", script, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] in ("200", "201")


def test_native_tools_work_after_eval_env(settings, run: Run) -> None:
    script = f"""
    set -e
    eval "$({ADFAME} env)"
    psql -tAc "select current_database()"
    kafka-topics --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --list
    python -c "import boto3; print(sorted(b['Name'] for b in boto3.client('s3').list_buckets()['Buckets']))"
    airflow dags list -o plain
    """
    result = run("bash", "-c", script)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert settings.app_db in out
    assert "adfame.prompts" in out and "adfame.prompts.dlq" in out
    assert "adfame-videos" in out
    assert "platform_healthcheck" in out


def test_up_restarts_only_the_killed_service(settings, run: Run) -> None:
    victim = "airflow-triggerer"
    pidfile = PidFile(settings.state_dir / victim / "pid")
    proc = pidfile.process()
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    wait_for(pidfile.process, what=f"{victim} gone", timeout_s=10, interval_s=0.2, done=lambda p: p is None)

    status = run(ADFAME, "stack", "status")
    assert status.returncode == 1
    assert any(line.startswith(victim) and "stopped" in line for line in status.stdout.splitlines())

    result = run(ADFAME, "stack", "up")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"started: {victim}\n" in result.stdout
    assert run(ADFAME, "stack", "status").returncode == 0


def test_worker_and_api_start_only_when_named(settings, run: Run) -> None:
    from inference.model import init_default_model

    init_default_model(settings)  # the worker serves the published base model
    try:
        result = run(ADFAME, "stack", "up", "worker", "api")
        assert result.returncode == 0, result.stderr[-2000:]
        status = run(ADFAME, "stack", "status")
        rows = service_rows(status.stdout)
        assert status.returncode == 0, status.stdout
        assert " healthy " in rows["worker"] and "1 member(s)" in rows["worker"]
        assert " healthy " in rows["api"]
    finally:
        down = run(ADFAME, "stack", "down", "worker", "api")
    assert down.returncode == 0 and "worker" in down.stdout
    rows = service_rows(run(ADFAME, "stack", "status").stdout)
    assert " off " in rows["worker"] and " off " in rows["api"]
