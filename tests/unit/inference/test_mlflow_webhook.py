"""The MLflow webhook receiver: MLflow's own signatures verify, forgeries and stale deliveries do not, and
only alias challenger on the served model starts a canary run (once per delivery). No services needed."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.webhooks.delivery import _generate_hmac_signature

from adfame.airflow_client import AirflowError
from adfame.contracts import CANARY_DAG_ID
from adfame.mlflow_webhook_setup import WEBHOOK_PATH
from adfame.settings import Settings
from inference.api import create_app
from inference.mlflow_webhook import InvalidSignature, canary_run_id, parse_alias_event, verify_signature

SECRET = "webhook-secret-for-tests"
MODEL = "adfame-wan-lora"


class FakeAirflow:
    """Records triggers; a repeated run id gets Airflow's 409, as the real API answers."""

    def __init__(self, down: bool = False) -> None:
        self.runs: dict[str, tuple[str, dict[str, Any]]] = {}
        self.down = down

    def __enter__(self) -> FakeAirflow:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def trigger_dag(self, dag_id: str, conf: dict[str, Any], run_id: str) -> dict[str, Any]:
        if self.down:
            raise AirflowError("Airflow at http://127.0.0.1:1 is not reachable")
        if run_id in self.runs:
            raise AirflowError(f"run {run_id} exists", status=409)
        self.runs[run_id] = (dag_id, conf)
        return {"dag_run_id": run_id}


def signed(event: str, data: dict[str, str], *, secret: str = SECRET, age_s: int = 0) -> tuple[dict, bytes]:
    """A delivery exactly as MLflow 3.17's server builds and signs it."""
    entity, action = event.rsplit(".", 1)
    body = json.dumps(
        {"entity": entity, "action": action, "timestamp": "2026-01-01T00:00:00+00:00", "data": data}
    )
    delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()) - age_s)
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, timestamp, body),
    }
    return headers, body.encode()


def challenger_set(version: str = "3", name: str = MODEL, alias: str = "challenger") -> tuple[dict, bytes]:
    return signed("model_version_alias.created", {"name": name, "alias": alias, "version": version})


@pytest.fixture()
def airflow() -> FakeAirflow:
    return FakeAirflow()


@pytest.fixture()
def client(airflow: FakeAirflow) -> TestClient:
    settings = Settings(_env_file=None, mlflow_webhook_secret=SECRET, registered_model=MODEL)
    # No lifespan: nothing connects to PostgreSQL or Kafka.
    return TestClient(create_app(settings, airflow_client_factory=lambda: airflow))


def test_mlflows_own_signature_verifies_and_a_forgery_does_not() -> None:
    headers, body = challenger_set()
    assert verify_signature(SECRET, headers, body) == headers["X-MLflow-Delivery-Id"]
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature(SECRET, headers, body.replace(b'"3"', b'"4"'))
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_signature("another-secret", headers, body)
    with pytest.raises(InvalidSignature, match="missing"):
        verify_signature(SECRET, {"X-MLflow-Delivery-Id": "x"}, body)
    with pytest.raises(InvalidSignature, match="not trusted"):
        verify_signature(SECRET, *challenger_set(), now=time.time() + 3600)
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify_signature("", headers, body)


def test_alias_challenger_on_the_served_model_starts_one_canary_run(client, airflow) -> None:
    headers, body = challenger_set("3")
    first = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    assert airflow.runs == {
        run_id: (CANARY_DAG_ID, {"model_name": MODEL, "model_version": "3", "source": "mlflow-webhook"})
    }
    again = client.post(WEBHOOK_PATH, content=body, headers=headers)  # MLflow retrying the same delivery
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert len(airflow.runs) == 1


# Deliveries are signed when the test runs, not when it is collected: the receiver refuses old ones.
@pytest.mark.parametrize(
    ("delivery", "why"),
    [
        (lambda: challenger_set(alias="champion"), "alias 'champion'"),
        (lambda: challenger_set(name="someone-elses-model"), "not the served model"),
        (
            lambda: signed("model_version.created", {"name": MODEL, "version": "3"}),
            "not a model_version_alias.created",
        ),
    ],
)
def test_other_aliases_models_and_events_are_acknowledged_and_ignored(client, airflow, delivery, why) -> None:
    headers, body = delivery()
    response = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert why in response.json()["detail"] and airflow.runs == {}


def test_unsigned_malformed_and_undeliverable_events_get_clear_answers(client, airflow) -> None:
    headers, body = challenger_set()
    forged = client.post(WEBHOOK_PATH, content=body, headers={**headers, "X-MLflow-Signature": "v1,AAAA"})
    assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
    unsigned = client.post(WEBHOOK_PATH, json={"entity": "model_version_alias"})
    assert unsigned.status_code == 401 and "missing" in unsigned.json()["detail"]
    garbled = signed("model_version_alias.created", {"name": MODEL})
    assert client.post(WEBHOOK_PATH, content=garbled[1], headers=garbled[0]).status_code == 400
    airflow.down = True
    down = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert down.status_code == 503 and "not reachable" in down.json()["detail"]  # MLflow delivers again
    assert airflow.runs == {}


def test_run_ids_are_per_delivery_and_airflow_safe() -> None:
    event = parse_alias_event(
        "0d9e-4f",
        b'{"entity": "model_version_alias", "action": "created",'
        b' "data": {"name": "m", "alias": "challenger", "version": "12"}}',
    )
    assert event is not None and canary_run_id(event) == "mlflow_webhook_v12_0d9e-4f"
    assert parse_alias_event("x", b'{"entity": "registered_model", "action": "created", "data": {}}') is None
