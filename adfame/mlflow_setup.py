"""MLflow client set-up: tracking server address and the S3 endpoint for artifacts.

MLflow reads its configuration from the process environment (boto3 included),
so this module puts the settings there once and hands back a client.
"""

from __future__ import annotations

import os

from adfame.settings import Settings, get_settings


def mlflow_environment(settings: Settings | None = None) -> dict[str, str]:
    """The variables MLflow and boto3 need to talk to our tracking server and object store."""
    settings = settings or get_settings()
    return {
        "MLFLOW_TRACKING_URI": settings.mlflow_url,
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_url,
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": settings.s3_region,
    }


def configure_mlflow(settings: Settings | None = None):  # -> mlflow.MlflowClient
    """Point this process's MLflow at the AdFame tracking server; returns an ``MlflowClient``."""
    import mlflow  # heavy; imported only by the callers that need it

    env = mlflow_environment(settings)
    os.environ.update(env)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    return mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
