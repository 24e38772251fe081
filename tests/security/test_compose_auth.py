"""docker-compose.yaml puts Airflow and MLflow behind a login, with credentials from the environment.

Read as YAML (no Docker engine here): Airflow's SimpleAuthManager with the admin's password written from
``ADFAME_AIRFLOW_PASSWORD`` at every start (never "all admins"), MLflow's basic-auth app with its admin
and session key from required variables, and every service that calls MLflow holding its credentials.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adfame.settings import _GENERATED_SECRETS

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yaml"
REQUIRED = re.compile(r"^\$\{(?P<name>ADFAME_\w+):\?[^}]*\}$")
# Services that call MLflow: AdFame's processes and every Airflow component (tasks log runs and models).
MLFLOW_CLIENTS = (
    "worker",
    "api",
    "dashboard",
    "airflow-scheduler",
    "airflow-api-server",
    "airflow-worker",
    "airflow-edge-worker",  # the training task logs its run there
)


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def _required_secret(value: str) -> str:
    """The ADFAME_ variable a value must come from; fails for a literal or a defaulted one."""
    match = REQUIRED.match(value)
    assert match, f"{value!r} is not a required ${{ADFAME_...:?...}} variable"
    name = match["name"].removeprefix("ADFAME_")
    assert name in _GENERATED_SECRETS, f"{name} is not generated into the state folder's secrets.env"
    return name


def test_airflow_asks_for_a_login(services: dict[str, dict[str, Any]]) -> None:
    api_server = services["airflow-api-server"]
    env = _env(api_server)
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "false").lower() == "false"
    assert _required_secret(env["ADFAME_AIRFLOW_PASSWORD"]) == "AIRFLOW_PASSWORD"
    # The passwords file is written from the environment before the server starts, owner-only.
    script = "\n".join(str(part) for part in api_server["command"])
    assert "umask 077" in script and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    assert script.strip().endswith("exec airflow api-server")
    assert _required_secret(env["AIRFLOW__API_AUTH__JWT_SECRET"]) == "AIRFLOW_JWT_SECRET"


def test_mlflow_asks_for_a_login(services: dict[str, dict[str, Any]]) -> None:
    mlflow = services["mlflow"]
    assert "--app-name=basic-auth" in mlflow["command"]
    env = _env(mlflow)
    assert _required_secret(env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == "MLFLOW_PASSWORD"
    assert _required_secret(env["MLFLOW_FLASK_SERVER_SECRET_KEY"]) == "MLFLOW_FLASK_SECRET_KEY"
    # Its users outlive the container: the auth database is on a named volume in its working folder.
    assert f"mlflow-auth:{mlflow['working_dir']}" in mlflow["volumes"]
    # The health check needs no login (MLflow leaves /health open), so it still works.
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])


@pytest.mark.parametrize("name", MLFLOW_CLIENTS)
def test_every_mlflow_client_holds_the_credentials(services: dict[str, dict[str, Any]], name: str) -> None:
    env = _env(services[name])
    assert env["MLFLOW_TRACKING_USERNAME"] == "${ADFAME_MLFLOW_USER:-admin}"
    assert _required_secret(env["MLFLOW_TRACKING_PASSWORD"]) == "MLFLOW_PASSWORD"
