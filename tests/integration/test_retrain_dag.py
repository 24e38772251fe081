"""retrain_on_feedback end to end, once, on the real stack: a milestone of 200 selections becomes a
registered version with its lineage and a gate decision; the training task runs on the stack's edge
worker (Edge executor, queue gpu) and every other task on LocalExecutor; registering again adds nothing;
a bad conf fails the first task; ``adfame lineage`` follows a request of the new version back to the
selections.

The one run is fault (g)'s (``killed_training_retrain``, tests/conftest.py): its training task is SIGKILLed
mid-run and retried, which tests/reliability/test_training_task_killed.py judges; here it is the
ordinary end-to-end run. The DAG's tasks run in the test stack's Airflow with the stack's settings, so
the selections go into the stack's app database (its schema brought up to date first): the next whole
milestone there. The run is sized for CI (a few training steps, a few held-out videos); learning
figures belong to bench/.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adfame import db
from adfame.airflow_client import AirflowClient
from adfame.contracts import CHALLENGER_ALIAS, RETRAIN_DAG_ID, SELECTIONS_PER_RETRAIN
from adfame.mlflow_setup import configure_mlflow
from adfame.repositories.requests import Outcome, finish_request, record_request
from adfame.repositories.selections import insert_milestone, mark_triggered
from adfame.schemas import PromptRequest, RetrainConf
from adfame.settings import Settings
from devkit.fault_report import FaultReport
from devkit.fault_training import TENANT, TRAIN_TASK
from training import retrain
from training.config import TrainConfig
from training.registry import LineageTag, milestone_version

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")


def served_request(app: Engine, version_label: str) -> uuid.UUID:
    """A request the new version served, as a worker records it."""
    request = PromptRequest(tenant=TENANT, prompt="a sneaker rotates on a pedestal")
    record_request(app, request)
    outcome = Outcome(status="succeeded", route="challenger", model_version=version_label, timings={})
    finish_request(app, request.request_id, outcome)
    return request.request_id


@pytest.mark.timeout(1200)  # the fixture's DAG run: five tasks, the training task twice (killed once)
def test_the_training_task_runs_on_the_edge_worker_and_the_others_on_local_executor(
    settings: Settings, killed_training_retrain: FaultReport
) -> None:
    run_id = killed_training_retrain.details["run_id"]
    with AirflowClient(settings) as airflow:
        instances = {ti["task_id"]: ti for ti in airflow.task_instances(RETRAIN_DAG_ID, run_id)}
        tries = airflow.task_tries(RETRAIN_DAG_ID, run_id, TRAIN_TASK)
        jobs = [job for job in airflow.edge_jobs(RETRAIN_DAG_ID, run_id) if job["task_id"] == TRAIN_TASK]
    train = instances.pop(TRAIN_TASK)
    assert (train["state"], train["executor"], train["queue"], train["pool"]) == (
        "success", "EdgeExecutor", settings.gpu_queue, settings.gpu_pool,
    )  # fmt: skip
    assert {(t["executor"], t["queue"]) for t in tries} == {("EdgeExecutor", settings.gpu_queue)}
    # The Edge executor's own records: each try was a job on the stack's edge worker, the last succeeded.
    by_try = {job["try_number"]: job for job in jobs}
    assert sorted(by_try) == [int(t["try_number"]) for t in tries]
    assert {job["edge_worker"] for job in jobs} == {settings.edge_worker_name}
    assert by_try[int(train["try_number"])]["state"] == "success"
    # The worker keeps its task logs in its own folder, as on another host, and pushes them to the API
    # server: the training task's log is there and in the API server's; no other task's is.
    edge_logs = (
        settings.state_dir / "airflow-edge-worker" / "logs" / f"dag_id={RETRAIN_DAG_ID}" / f"run_id={run_id}"
    )
    assert [p.name for p in edge_logs.iterdir()] == [f"task_id={TRAIN_TASK}"]
    log = airflow_log_text(settings, run_id, int(train["try_number"]))
    assert "resuming from the checkpoint" in log
    for task_id, ti in instances.items():
        assert ti["executor"] in (None, "LocalExecutor"), (task_id, ti["executor"])


def airflow_log_text(settings: Settings, run_id: str, try_number: int) -> str:
    """The training try's log as the API server serves it (pushed there by the edge worker)."""
    with AirflowClient(settings) as airflow:
        events = airflow.task_log(RETRAIN_DAG_ID, run_id, TRAIN_TASK, try_number)
    return "\n".join(str(event.get("event", "")) for event in events)


@pytest.mark.timeout(900)
def test_a_milestone_becomes_a_gated_version_with_its_lineage(
    settings: Settings, killed_training_retrain: FaultReport
) -> None:
    app = db.create_engine_for(settings)
    details = killed_training_retrain.details
    milestone, conf = details["milestone"], details["conf"]
    with AirflowClient(settings) as airflow:
        run = airflow.get_dag_run(RETRAIN_DAG_ID, details["run_id"])
        instances = airflow.task_instances(RETRAIN_DAG_ID, details["run_id"])
        states = {ti["task_id"]: ti["state"] for ti in instances}
        assert run["state"] == "success", states
        evaluated = airflow.request(
            "GET",
            f"/api/v2/dags/{RETRAIN_DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/evaluate_step/xcomEntries/return_value",
        ).json()["value"]

        bad = airflow.run_dag(
            RETRAIN_DAG_ID, {"milestone": 0}, run_id=f"test_retrain_bad_{uuid.uuid4().hex[:8]}"
        )
        export = next(ti for ti in bad.task_instances if ti["task_id"] == "export_step")
        assert (bad.state, export["state"], export["try_number"]) == ("failed", "failed", 1)

    client = configure_mlflow(settings)
    version = milestone_version(client, settings.registered_model, milestone)
    assert version is not None
    tags = version.tags
    first = (milestone - 1) * SELECTIONS_PER_RETRAIN + 1
    assert tags[LineageTag.SELECTION_RANGE] == f"{first}..{milestone * SELECTIONS_PER_RETRAIN}"
    assert tags[LineageTag.OBJECTIVE] == "dpo" and tags[LineageTag.BASE_MODEL] == settings.model_source
    # The LoRA started from the champion (this run adds a challenger only) when its adapter has the run's
    # shape, else fresh.
    start = retrain.warm_start(
        retrain.champion_version(client, settings), TrainConfig(**conf["train"]), settings
    )
    assert tags[LineageTag.PARENT_VERSION] == (start.version if start else "none")
    run_id = tags[LineageTag.TRAINING_RUN]
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(
        range(1, conf["train"]["steps"] + 1)
    )
    if tags[LineageTag.GATE] == "passed":
        assert states["announce_step"] == "success" and CHALLENGER_ALIAS in version.aliases
    else:
        assert states["announce_step"] == "skipped" and tags[LineageTag.GATE_FAILED]

    # Registering the milestone again (a re-run's register task) adds no version.
    again = retrain.register_step(RetrainConf(**conf), retrain.Evaluated.model_validate(evaluated))
    assert (again.version, again.created) == (str(version.version), False)
    assert milestone_version(client, settings.registered_model, milestone).version == version.version

    request_id = served_request(app, f"{version.name}/{version.version}")
    printed = subprocess.run(
        [ADFAME, "lineage", str(request_id)], capture_output=True, text=True, timeout=120
    )
    assert printed.returncode == 0, printed.stderr
    assert f"{version.name}/{version.version}" in printed.stdout and run_id in printed.stdout
    assert tags[LineageTag.EXPORT_MANIFEST] in printed.stdout and f"seq {first}.." in printed.stdout

    # What `make demo` prints after its picks: the milestone's run, its version, gate and scores.
    with app.begin() as conn:
        insert_milestone(conn, milestone, milestone * SELECTIONS_PER_RETRAIN)
    mark_triggered(app, milestone, RETRAIN_DAG_ID, run["dag_run_id"])
    shown = subprocess.run(
        [ADFAME, "retrain", "show", "--milestone", str(milestone), "--wait", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{run['dag_run_id']} success" in shown.stdout
    assert f"version {version.name}/{version.version}" in shown.stdout and run_id in shown.stdout
    assert "challenger_heldout_preference_accuracy" in shown.stdout
    app.dispose()
