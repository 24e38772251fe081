"""Trigger a DAG through the real Airflow REST API and watch it succeed."""

from __future__ import annotations

import uuid

import pytest

from adfame.airflow_client import AirflowClient, AirflowError
from adfame.settings import Settings

pytestmark = pytest.mark.integration

DAG_ID = "platform_healthcheck"


def test_trigger_dag_and_see_it_succeed(settings) -> None:
    with AirflowClient(settings) as client:
        client.wait_for_dag(DAG_ID, timeout_s=180)
        client.set_paused(DAG_ID, False)
        run_id = f"test__{uuid.uuid4().hex[:10]}"
        client.trigger_dag(DAG_ID, conf={"requested_by": "integration-test"}, run_id=run_id)
        run = client.wait_for_dag_run(DAG_ID, run_id, timeout_s=240)
        tasks = client.task_instances(DAG_ID, run_id)
        client.set_paused(DAG_ID, True)
    assert run["state"] == "success", tasks
    assert run["conf"] == {"requested_by": "integration-test"}
    assert {t["state"] for t in tasks} == {"success"}
    assert len(tasks) == 4


def test_same_run_id_twice_is_refused(settings) -> None:
    with AirflowClient(settings) as client:
        client.wait_for_dag(DAG_ID, timeout_s=180)
        run_id = f"test__{uuid.uuid4().hex[:10]}"
        client.trigger_dag(DAG_ID, run_id=run_id)
        with pytest.raises(AirflowError, match="409"):
            client.trigger_dag(DAG_ID, run_id=run_id)


def test_wrong_password_is_a_clear_error(settings) -> None:
    wrong = settings.model_copy(update={"airflow_password": settings.airflow_password.__class__("nope")})
    assert isinstance(wrong, Settings)
    with AirflowClient(wrong) as client, pytest.raises(AirflowError, match="login"):
        client.get_dag(DAG_ID)
