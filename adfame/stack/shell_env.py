"""`adfame env`: shell exports that point the native tools at the stack.

The tools: airflow, mlflow, psql, Kafka's CLIs and any S3 client.
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
        "ADFAME_STATE_DIR": str(s.state_dir),
        "DATABASE_URL": s.database_url(),
        "PGHOST": s.postgres_host,
        "PGPORT": str(s.postgres_port),
        "PGUSER": s.postgres_user,
        "PGPASSWORD": s.postgres_password.get_secret_value(),
        "PGDATABASE": s.app_db,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
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
