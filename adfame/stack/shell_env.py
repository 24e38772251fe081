"""The front door: how native tools and people reach the stack.

`adfame env` prints shell exports for the native tools (airflow, mlflow, psql, Kafka's CLIs, any S3
client) and the Airflow login; `adfame stack status` ends with how to log in to each UI.
"""

from __future__ import annotations

import os
import shlex

from adfame.mlflow_setup import mlflow_environment
from adfame.settings import Settings
from adfame.stack.services import VENV_BIN, airflow_environment


def stack_environment(settings: Settings) -> dict[str, str]:
    s = settings
    env = {
        "DATABASE_URL": s.database_url(),
        "PGHOST": s.postgres_host,
        "PGPORT": str(s.postgres_port),
        "PGUSER": s.postgres_user,
        "PGPASSWORD": s.postgres_password.get_secret_value(),
        "PGDATABASE": s.app_db,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
        # Airflow's UI and REST API login (the names airflowctl and most scripts ask for).
        "AIRFLOW_USERNAME": s.airflow_user,
        "AIRFLOW_PASSWORD": s.airflow_password.get_secret_value(),
        "AWS_ENDPOINT_URL": s.s3_url,
        "S3_ENDPOINT_URL": s.s3_url,
        **mlflow_environment(s),
        **airflow_environment(s),
    }
    path = os.environ.get("PATH", "")
    env["PATH"] = os.pathsep.join([str(VENV_BIN), str(s.state_dir / "bin"), path])
    return env


def render_exports(env: dict[str, str]) -> str:
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


def login_guide(settings: Settings) -> str:
    """How to log in to each UI, printed by `adfame stack status` (so at the end of `make demo`):
    the Airflow password as `airflow standalone` shows it, where the S3 secret is, and the API's keys."""
    s = settings
    api_url = f"http://{s.host}:{s.api_port}"
    rows = [
        (
            "Airflow",
            s.airflow_url,
            f"user {s.airflow_user}, password {s.airflow_password.get_secret_value()}",
        ),
        ("MLflow", s.mlflow_url, "no login"),
        ("S3", s.s3_url, f"access key {s.s3_access_key}, secret key in {s.secrets_path} or `adfame env`"),
        ("API", api_url, "a tenant's key from `adfame api-key create --tenant NAME`"),
    ]
    lines = [f"  {name:<8} {url:<24} {login}" for name, url, login in rows]
    return "\n".join(["How to log in:", *lines])
