"""The stack's MLflow registry webhook: what the MLflow server needs to send it, and its registration.

Why: a reviewer who sets alias ``challenger`` by hand in the MLflow UI should start a canary just as a
retrain does. MLflow 3 posts a signed ``model_version_alias.created`` event to every registered
webhook; the API receives it (``inference.mlflow_webhook``) and triggers ``canary_rollout``.
MLflow's server refuses to deliver to the local stack unless told to: by default it allows only
``https`` URLs and blocks private and loopback addresses (SSRF protection), and without a fixed
encryption key each server start would encrypt the webhook's secret under a new random key and could
not read it back after a restart. ``server_environment`` sets those for the ``MlflowServer`` process;
``ensure_alias_webhook`` registers the webhook, idempotently, on every ``adfame stack up``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from adfame.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.webhook import Webhook

log = logging.getLogger(__name__)

WEBHOOK_NAME = "adfame-canary-on-challenger"
WEBHOOK_PATH = "/webhooks/mlflow"
ALIAS_CREATED_EVENT = "model_version_alias.created"
# How long the MLflow server caches its list of webhooks; short, so a new registration counts at once.
WEBHOOK_CACHE_TTL_S = 5


def webhook_url(settings: Settings) -> str:
    """Where MLflow posts alias events: ``mlflow_webhook_url``, or the stack's API."""
    return settings.mlflow_webhook_url or f"{settings.api_url}{WEBHOOK_PATH}"


def server_environment(settings: Settings) -> dict[str, str]:
    """What the MLflow server process needs to deliver webhooks to the API of this stack."""
    return {
        # The local API speaks plain http on a loopback address: both are refused by default.
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": settings.mlflow_webhook_encryption_key.get_secret_value(),
        "MLFLOW_WEBHOOK_CACHE_TTL": str(WEBHOOK_CACHE_TTL_S),
    }


def ensure_alias_webhook(settings: Settings, client: MlflowClient) -> Webhook:
    """Create the webhook, or bring an existing one (found by name) to this URL, event and secret.

    Updating an existing one every time keeps it right after the API moved or the secret changed,
    and makes a repeat harmless.
    """
    url = webhook_url(settings)
    secret = settings.mlflow_webhook_secret.get_secret_value()
    description = "AdFame: alias challenger set -> canary_rollout (inference/mlflow_webhook.py)"
    existing = [hook for hook in _all_webhooks(client) if hook.name == WEBHOOK_NAME]
    for duplicate in existing[1:]:
        client.delete_webhook(duplicate.webhook_id)
    if existing:
        return client.update_webhook(
            existing[0].webhook_id,
            url=url,
            events=[ALIAS_CREATED_EVENT],
            description=description,
            secret=secret,
            status="ACTIVE",
        )
    log.info("registering MLflow webhook %s -> %s", WEBHOOK_NAME, url)
    return client.create_webhook(
        WEBHOOK_NAME, url, [ALIAS_CREATED_EVENT], description=description, secret=secret
    )


def _all_webhooks(client: MlflowClient) -> list[Webhook]:
    hooks: list[Webhook] = []
    token: str | None = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        hooks.extend(page)
        if not page.token:
            return hooks
        token = page.token
