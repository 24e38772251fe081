"""The MLflow server's webhook environment and the idempotent registration (no services needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adfame.mlflow_webhook_setup import WEBHOOK_NAME, ensure_alias_webhook, webhook_url
from adfame.settings import Settings
from adfame.stack.services import MlflowServer


@dataclass
class Hook:
    webhook_id: str
    name: str
    url: str
    events: list[str]
    secret: str | None = None


class Page(list):
    token = None


@dataclass
class FakeRegistry:
    """The webhook calls of MlflowClient, kept in a dict."""

    hooks: dict[str, Hook] = field(default_factory=dict)

    def list_webhooks(self, max_results: int, page_token: str | None) -> Page:
        return Page(self.hooks.values())

    def create_webhook(self, name: str, url: str, events: list[str], **kwargs: Any) -> Hook:
        hook = Hook(str(len(self.hooks) + 1), name, url, events, kwargs.get("secret"))
        self.hooks[hook.webhook_id] = hook
        return hook

    def update_webhook(self, webhook_id: str, **changes: Any) -> Hook:
        hook = self.hooks[webhook_id]
        hook.url, hook.events, hook.secret = changes["url"], changes["events"], changes["secret"]
        return hook

    def delete_webhook(self, webhook_id: str) -> None:
        del self.hooks[webhook_id]


def settings(**values: Any) -> Settings:
    secrets = {"mlflow_webhook_secret": "s", "mlflow_webhook_encryption_key": "k"}
    return Settings(_env_file=None, **{**secrets, **values})


def test_the_mlflow_server_may_deliver_to_the_local_api() -> None:
    env = MlflowServer(settings()).environment()
    assert env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http,https"
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    assert env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"] == "k"


def test_the_url_is_the_apis_unless_set() -> None:
    assert webhook_url(settings(api_port=8123)) == "http://127.0.0.1:8123/webhooks/mlflow"
    assert webhook_url(settings(mlflow_webhook_url="http://api:8000/webhooks/mlflow")).startswith(
        "http://api:"
    )


def test_registration_is_idempotent_and_follows_the_settings() -> None:
    registry = FakeRegistry()
    ensure_alias_webhook(settings(), registry)
    ensure_alias_webhook(settings(), registry)
    registry.create_webhook(WEBHOOK_NAME, "http://old", ["model_version_alias.created"])  # a stray duplicate
    ensure_alias_webhook(settings(api_port=9000, mlflow_webhook_secret="new"), registry)
    (hook,) = registry.hooks.values()
    assert (hook.name, hook.url, hook.events, hook.secret) == (
        WEBHOOK_NAME,
        "http://127.0.0.1:9000/webhooks/mlflow",
        ["model_version_alias.created"],
        "new",
    )
