"""MLflow's registry webhook, received: a reviewer set alias ``challenger`` -> one ``canary_rollout`` run.

Why: a version can become the challenger by hand in the MLflow UI, not only through a retrain; its
canary should start all the same. The MLflow server posts a ``model_version_alias.created`` event,
signed the Standard Webhooks way (HMAC-SHA256 over ``<delivery id>.<timestamp>.<body>`` with the
shared secret, ``v1,<base64>`` in ``X-MLflow-Signature``). Only a correctly signed, recent event for
the served registered model and alias ``challenger`` triggers a run; every other alias or model is
acknowledged and ignored. The run id carries the delivery id, so a redelivery is refused by Airflow
(409) and starts nothing twice; a canary the retrain's asset event already started is skipped by
the DAG's first task. Registration: ``adfame.mlflow_webhook_setup``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from adfame.airflow_client import AirflowClient, AirflowError
from adfame.contracts import CANARY_DAG_ID, CHALLENGER_ALIAS
from adfame.mlflow_webhook_setup import ALIAS_CREATED_EVENT
from adfame.settings import Settings

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_ID_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
# A signed event older (or further in the future) than this is refused: a captured delivery cannot be
# replayed later. MLflow retries within seconds to a minute.
MAX_CLOCK_SKEW_S = 300
WEBHOOK_SOURCE = "mlflow-webhook"
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")


class WebhookAnswer(BaseModel):
    """What the receiver did with a delivery (MLflow only logs it; people read it in the API's log)."""

    status: Literal["triggered", "duplicate", "ignored"]
    detail: str
    run_id: str | None = None


class InvalidSignature(Exception):
    """The delivery is not signed with our secret, or too old to trust; the message says which."""


class MalformedEvent(ValueError):
    """A correctly signed body that is not an MLflow webhook event."""


@dataclass(frozen=True)
class AliasEvent:
    """One ``model_version_alias.created`` delivery."""

    delivery_id: str
    name: str
    alias: str
    version: str


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """The delivery id of a correctly signed, recent delivery; raises ``InvalidSignature`` otherwise."""
    if not secret:
        raise InvalidSignature("no webhook secret is configured (ADFAME_MLFLOW_WEBHOOK_SECRET)")
    lowered = {key.lower(): value for key, value in headers.items()}  # HTTP header names ignore case
    delivery_id, timestamp, signature = (
        lowered.get(name, "") for name in (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
    )
    if not (delivery_id and timestamp and signature):
        raise InvalidSignature(f"missing {SIGNATURE_HEADER}, {TIMESTAMP_HEADER} or {DELIVERY_ID_HEADER}")
    try:
        age_s = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not a unix time: {timestamp[:40]!r}") from None
    if abs(age_s) > MAX_CLOCK_SKEW_S:
        raise InvalidSignature(f"signed {age_s:.0f}s ago, more than {MAX_CLOCK_SKEW_S}s: not trusted")
    signed = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    expected = f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidSignature("the signature does not match this delivery")
    return delivery_id


def parse_alias_event(delivery_id: str, body: bytes) -> AliasEvent | None:
    """The alias event in the body; None for any other kind of event (they are not ours to act on)."""
    try:
        payload: Any = json.loads(body)
        kind = f"{payload['entity']}.{payload['action']}"
        data = payload["data"]
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedEvent(f"not an MLflow webhook event: {exc.__class__.__name__}: {exc}") from None
    if kind != ALIAS_CREATED_EVENT:
        return None
    try:
        return AliasEvent(delivery_id, str(data["name"]), str(data["alias"]), str(data["version"]))
    except (TypeError, KeyError) as exc:
        raise MalformedEvent(f"{ALIAS_CREATED_EVENT} without name, alias and version: {exc}") from None


def ignored_because(settings: Settings, event: AliasEvent | None) -> str | None:
    """Why this event starts no canary, or None when it should start one."""
    if event is None:
        return f"not a {ALIAS_CREATED_EVENT} event"
    if event.alias != CHALLENGER_ALIAS:
        return f"alias {event.alias!r} is not {CHALLENGER_ALIAS!r}"
    if event.name != settings.registered_model:
        return f"model {event.name!r} is not the served model {settings.registered_model!r}"
    return None


def canary_run_id(event: AliasEvent) -> str:
    """One run per delivery: a redelivery of the same event gets Airflow's 409."""
    return _RUN_ID_UNSAFE.sub("_", f"mlflow_webhook_v{event.version}_{event.delivery_id}")


def receive(
    settings: Settings, client: AirflowClient, headers: Mapping[str, str], body: bytes
) -> WebhookAnswer:
    """Verify, read and act on one delivery: trigger ``canary_rollout`` for a new challenger.

    Raises ``InvalidSignature``, ``MalformedEvent``, or ``AirflowError`` when Airflow did not take the
    run (the API answers 503 then, and MLflow delivers again).
    """
    delivery_id = verify_signature(settings.mlflow_webhook_secret.get_secret_value(), headers, body)
    event = parse_alias_event(delivery_id, body)
    reason = ignored_because(settings, event)
    if event is None or reason is not None:
        return WebhookAnswer(status="ignored", detail=reason or "ignored")
    run_id = canary_run_id(event)
    conf = {"model_name": event.name, "model_version": event.version, "source": WEBHOOK_SOURCE}
    try:
        client.trigger_dag(CANARY_DAG_ID, conf, run_id=run_id)
    except AirflowError as exc:
        if not exc.conflict:
            raise
        return WebhookAnswer(status="duplicate", detail="this delivery was received before", run_id=run_id)
    detail = f"{CANARY_DAG_ID} started for {event.name} version {event.version}"
    return WebhookAnswer(status="triggered", detail=detail, run_id=run_id)
