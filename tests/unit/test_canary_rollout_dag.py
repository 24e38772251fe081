"""canary_rollout as Airflow parses it: scheduled on the retrain's asset, one run at a time, one judged step
per traffic weight, and Airflow's ApprovalOperator before 100 % only when the setting asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from adfame.contracts import CANARY_DAG_ID
from adfame.settings import PROJECT_ROOT, get_settings
from operators.canary_step import CanaryConf

DAG_FILE = PROJECT_ROOT / "dags" / "canary_rollout.py"


@pytest.fixture()
def parse_dag(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Parse the DAG file in a DagBag under the given settings (environment variables)."""

    def parse(**environment: str):
        from airflow.dag_processing.dagbag import DagBag

        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        bag = DagBag(dag_folder=str(DAG_FILE))
        assert bag.import_errors == {}
        return bag.dags[CANARY_DAG_ID]

    yield parse
    get_settings.cache_clear()  # the next test reads the environment as it was


def chain_of(dag) -> list[str]:
    """The task ids from the first task along the only path."""
    (task,) = [t for t in dag.tasks if not t.upstream_task_ids]
    ids = [task.task_id]
    while task.downstream_task_ids:
        (following,) = task.downstream_task_ids
        task = dag.get_task(following)
        ids.append(task.task_id)
    return ids


def test_steps_follow_the_setting_without_approval_by_default(parse_dag) -> None:
    dag = parse_dag(ADFAME_CANARY_REQUIRE_APPROVAL="false", ADFAME_CANARY_STEPS="[5, 25, 50, 100]")
    assert chain_of(dag) == ["start_canary", "step_1", "step_2", "step_3", "step_4", "promote"]
    assert dag.max_active_runs == 1
    assert dag.timetable.asset_condition.name == "challenger_model"  # the asset the retrain updates
    assert dag.params["steps"] == [5, 25, 50, 100] and dag.params["model_version"] is None


def test_approval_before_full_traffic_when_the_setting_asks(parse_dag) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = parse_dag(ADFAME_CANARY_REQUIRE_APPROVAL="true", ADFAME_CANARY_STEPS="[10, 100]")
    assert chain_of(dag) == ["start_canary", "step_1", "approve_full_traffic", "step_2", "promote"]
    approval = dag.get_task("approve_full_traffic")
    assert isinstance(approval, ApprovalOperator)
    assert approval.defaults == [ApprovalOperator.REJECT] and approval.response_timeout is not None


def test_the_window_is_waited_for_by_the_triggerer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step sets the weight and defers to a DateTimeTrigger at the window's end: no worker slot sleeps."""
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk.exceptions import TaskDeferred

    import monitoring.rollout as rollout
    from operators import canary_step

    calls = []
    monkeypatch.setattr(canary_step, "rollout_for", lambda conf, name: _NoServices())
    monkeypatch.setattr(canary_step, "expect_live", lambda r, version: None)
    monkeypatch.setattr(
        rollout, "set_weight", lambda *args, **kwargs: calls.append((args[2], kwargs["actor"]))
    )

    class TI:
        def xcom_pull(self, task_ids: str) -> dict[str, str]:
            return {"name": "m", "version": "3"}

    params = {
        "steps": [5, 25, 50, 100],
        "window_s": 30,
        "min_requests": 2,
        "max_windows": 2,
        "max_latency_ratio": 2,
    }
    step = canary_step.CanaryWindowOperator(position=2, of=4)
    with pytest.raises(TaskDeferred) as deferred:
        step.execute({"params": params, "ti": TI(), "run_id": "r1"})
    assert calls == [(25, "dag:r1")] and step.model_version_ref == ("m", "3")
    trigger, kwargs = deferred.value.trigger, deferred.value.kwargs
    assert isinstance(trigger, DateTimeTrigger) and deferred.value.method_name == "judge"
    assert (trigger.moment - _parse(kwargs["start"])).total_seconds() == pytest.approx(30)


class _NoServices:
    """Stands in for the database and MLflow: the rollout function it is handed to is replaced too."""

    def __enter__(self) -> SimpleNamespace:
        return SimpleNamespace(settings=None, engine=None, client=None)

    def __exit__(self, *exc: object) -> None:
        return None


def _parse(value: str):
    from datetime import datetime

    return datetime.fromisoformat(value)


@pytest.mark.parametrize("steps", [[5, 25], [25, 5, 100], [0, 100], [50, 50, 100], []])
def test_steps_must_rise_to_100(steps: list[int]) -> None:
    with pytest.raises(ValidationError, match="steps"):
        CanaryConf(steps=steps, window_s=1, min_requests=1, max_windows=1, max_latency_ratio=1.5)


def test_a_rejected_approval_rolls_the_canary_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import AirflowFailException

    import monitoring.rollout as rollout
    from operators import canary_step

    reasons = []
    monkeypatch.setattr(canary_step, "rollout_for", lambda conf, name: _NoServices())
    monkeypatch.setattr(canary_step, "expect_live", lambda r, version: None)
    monkeypatch.setattr(
        rollout, "rollback", lambda *args, **kwargs: reasons.append((args[3], kwargs["actor"]))
    )

    class TI:
        def xcom_pull(self, task_ids: str) -> dict[str, str]:
            return {"name": "m", "version": "3"}

    params = {"steps": [5, 100], "window_s": 30, "min_requests": 2, "max_windows": 2, "max_latency_ratio": 2}
    context = {"params": params, "ti": TI(), "run_id": "r1"}
    approval = canary_step.CanaryApprovalOperator(task_id="approve_full_traffic", subject="all traffic?")
    answer = {
        "params_input": {},
        "responded_at": datetime.now(UTC),
        "responded_by_user": {"id": "7", "name": "ana"},
    }
    assert approval.execute_complete(context, {**answer, "chosen_options": ["Approve"]})[
        "chosen_options"
    ] == ["Approve"]
    assert reasons == []
    with pytest.raises(AirflowFailException, match="rolled back"):
        approval.execute_complete(context, {**answer, "chosen_options": ["Reject"]})
    assert reasons == [("full traffic rejected in the Airflow UI (by ana)", "dag:r1")]
