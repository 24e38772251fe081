"""Fault (g): the training task of ``retrain_on_feedback`` SIGKILLed while it trains.

A milestone of 200 real selections is made in the stack's app database, its retrain is started, and
once the training task has written its first checkpoint past step 0 (so it is mid-run, with steps to
go) the task's own process is SIGKILLed: the pid Airflow recorded for the running try, checked by its
process title (``airflow worker -- <task instance id>``), so nothing else is ever hit. Airflow retries
the task (``ADFAME_RETRAIN_RETRY_DELAY_S`` later), the retry resumes from the checkpoint into the same
MLflow run, and the run goes on to evaluate and register.

The ledger is read from MLflow, PostgreSQL and the bucket, never from this module's own counters:
the milestone's registered versions (exactly one, logged from the training run), its training runs
(exactly one, finished, one loss point per step), its evaluation rows (one per role and metric) and its
checkpoints (the last one at the final step). ``training_task_killed`` returns the ``FaultReport`` the
reliability test asserts on and ``python -m bench.faults`` prints; the same run is the suite's one
end-to-end retrain (tests/integration/test_retrain_dag.py reads its details).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psutil
from sqlalchemy import Engine, text

from adfame import db
from adfame.airflow_client import AirflowClient, AirflowError
from adfame.contracts import RETRAIN_DAG_ID, SELECTIONS_PER_RETRAIN, VIDEOS_BUCKET, video_object_key
from adfame.repositories.evaluations import evaluation_of
from adfame.repositories.requests import Candidate, Outcome, finish_request, record_request
from adfame.repositories.selections import insert_selection
from adfame.schemas import PromptRequest
from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore
from adfame.waiting import wait_for
from devkit.fault_report import FaultReport
from inference.model import init_default_model
from inference.video import encode_mp4
from training import retrain
from training.checkpoints import CheckpointStore
from training.registry import LineageTag
from training.tracking import STEP_METRIC, TRAINING_EXPERIMENT

FAULT = "training task killed"
UNIT = "training runs"
TRAIN_TASK = "train_step"
TENANT = "retrainer"
CANDIDATES = 2  # per request: a winner and a loser
# Sized for CI: steps enough that the kill lands with steps to go, held-out videos few and small.
TRAIN = {"steps": 8, "batch_size": 2, "checkpoint_every": 2, "log_every": 1, "rank": 4, "alpha": 4}
EVALUATION = {
    "heldout_pairs": 2,
    "heldout_prompts": 1,
    "margin_draws": 1,
    "num_frames": 5,
    "height": 32,
    "width": 32,
    "fairness_subjects": ["young woman", "old man"],
}


class FaultError(RuntimeError):
    """The fault could not be injected as planned (the task ended before the kill, or no process matched)."""


@dataclass(frozen=True)
class Kill:
    """The process that was killed: the running try of the training task, and when (Unix time)."""

    pid: int
    task_instance_id: str
    try_number: int
    at_step: int
    killed_at: float


def clip(shade: int, frames: int = 5, size: int = 32) -> bytes:
    """A small real mp4 (serving's encoder): a bar sliding over a background ``shade`` picks."""
    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    video[:] = ((shade * 67) % 256, (shade * 131) % 256, 160)
    for index in range(frames):
        x = index * size // frames
        video[index, :, x : x + 8] = 255
    return encode_mp4(video, fps=8)


def prepare_milestone(app: Engine, store: ObjectStore, tenant: str = TENANT) -> int:
    """Fill the stack's current milestone with rows only, then make the next one of 200 real selections
    (``CANDIDATES`` real mp4 candidates each, the first picked); returns its number."""
    with app.connect() as conn:
        count = conn.execute(text("select count(*) from selections")).scalar_one()
    fill = -count % SELECTIONS_PER_RETRAIN
    videos = [clip(shade) for shade in range(CANDIDATES)]
    timings = {"queue_wait_s": 0.05, "denoise_s": 0.4, "decode_s": 0.05, "upload_s": 0.02}
    ids = []
    for number in range(fill + SELECTIONS_PER_RETRAIN):
        request = PromptRequest(tenant=tenant, prompt=f"sneakers on a running track, take {number}")
        record_request(app, request)
        made = [
            Candidate(i, f"shot {i}", 1000 + i, video_object_key(tenant, str(request.request_id), i))
            for i in range(CANDIDATES)
        ]
        if number >= fill:
            for candidate, video in zip(made, videos, strict=True):
                store.put_bytes(VIDEOS_BUCKET, candidate.object_key, video, content_type="video/mp4")
        finish_request(
            app, request.request_id, Outcome("succeeded", "champion", "base", timings, candidates=made)
        )
        ids.append(request.request_id)
    with app.begin() as conn:
        for request_id in ids:
            insert_selection(conn, request_id, 0, tenant)
    return (count + fill) // SELECTIONS_PER_RETRAIN + 1


def kill_training_mid_run(
    airflow: AirflowClient, checkpoints: CheckpointStore, run_id: str, timeout_s: float
) -> Kill:
    """Wait until the training task has checkpointed a step past 0, then SIGKILL its running try."""

    def progress() -> int | None:
        run = airflow.get_dag_run(RETRAIN_DAG_ID, run_id)
        if run is not None and run["state"] in ("success", "failed"):
            raise FaultError(f"run {run_id} ended ({run['state']}) before the training task could be killed")
        return checkpoints.latest_step()

    step = wait_for(
        progress,
        what=f"{TRAIN_TASK} of {run_id} checkpointed past step 0",
        timeout_s=timeout_s,
        interval_s=0.2,
        done=lambda found: found is not None and found > 0,
    )
    task = next(ti for ti in airflow.task_instances(RETRAIN_DAG_ID, run_id) if ti["task_id"] == TRAIN_TASK)
    if task["state"] != "running" or not task.get("pid"):
        raise FaultError(
            f"{TRAIN_TASK} is {task['state']} (pid {task.get('pid')}), not running, at step {step}"
        )
    process = psutil.Process(task["pid"])
    # The task runner titles itself with its task instance's id: a recycled pid cannot match.
    if task["id"] not in " ".join(process.cmdline()):
        raise FaultError(f"pid {task['pid']} is not {TRAIN_TASK}'s task runner: {process.cmdline()}")
    process.kill()
    return Kill(task["pid"], task["id"], int(task["try_number"]), step, time.time())


def _runs_of(client: Any, milestone: int) -> list[Any]:
    """The MLflow training runs tagged with the milestone (any status)."""
    experiment = client.get_experiment_by_name(TRAINING_EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.milestone = '{milestone}'")


def _versions_of(client: Any, name: str, milestone: int) -> list[Any]:
    return client.search_model_versions(f"name = '{name}' and tags.{LineageTag.MILESTONE} = '{milestone}'")


def read_ledger(settings: Settings, milestone: int, steps: int) -> dict[str, Any]:
    """What MLflow, PostgreSQL and the bucket hold for the milestone after the run."""
    from adfame.mlflow_setup import configure_mlflow

    client = configure_mlflow(settings)
    versions = _versions_of(client, settings.registered_model, milestone)
    runs = _runs_of(client, milestone)
    training_runs = {version.tags.get(LineageTag.TRAINING_RUN) for version in versions}
    history = client.get_metric_history(runs[0].info.run_id, STEP_METRIC) if len(runs) == 1 else []
    engine = db.create_engine_for(settings)
    try:
        rows = [
            (row.role, row.metric) for v in versions for row in evaluation_of(engine, v.name, str(v.version))
        ]
    finally:
        engine.dispose()
    store = ObjectStore(settings)
    checkpoints = CheckpointStore(retrain.checkpoint_uri(milestone), store)
    return {
        "versions": [str(v.version) for v in versions],
        "versions_from_other_runs": sum(1 for v in versions if v.run_id not in training_runs),
        "training_runs": {run.info.run_id: run.info.status for run in runs},
        "loss_points": len(history),
        "loss_steps_repeated": sum(n - 1 for n in Counter(m.step for m in history).values()),
        "loss_steps_missing": len(set(range(1, steps + 1)) - {m.step for m in history}),
        "evaluation_rows": len(rows),
        "evaluation_rows_repeated": len(rows) - len(set(rows)),
        "checkpoint_step": checkpoints.latest_step(),
        "checkpoint_files": len(store.list(checkpoints.bucket, f"{checkpoints.prefix}/step-")),
    }


def count_duplicates(ledger: dict[str, Any]) -> int:
    """Work done twice: a second version or training run for the milestone, a version not logged from its
    training run (a half-written attempt's), a loss step logged twice, an evaluation row twice."""
    return (
        max(0, len(ledger["versions"]) - 1)
        + max(0, len(ledger["training_runs"]) - 1)
        + ledger["versions_from_other_runs"]
        + ledger["loss_steps_repeated"]
        + ledger["evaluation_rows_repeated"]
    )


def count_lost(final_state: str, ledger: dict[str, Any], steps: int) -> int:
    """The milestone's retrain lost: the run failed, or no version, finished training run or final step."""
    finished = [status for status in ledger["training_runs"].values() if status == "FINISHED"]
    complete = ledger["versions"] and finished and ledger["checkpoint_step"] == steps
    return 0 if final_state == "success" and complete and not ledger["loss_steps_missing"] else 1


def _seconds_to_recover(tries: list[dict[str, Any]], kill: Kill) -> float:
    """From the kill to the end of the first try after it that succeeded (Airflow's own end date)."""
    later = [t for t in tries if int(t["try_number"]) > kill.try_number and t["state"] == "success"]
    if not later:
        return float("nan")
    return datetime.fromisoformat(later[0]["end_date"]).timestamp() - kill.killed_at


def training_task_killed(
    settings: Settings | None = None,
    *,
    train: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    timeout_s: float = 900.0,
) -> FaultReport:
    """Run fault (g) on the stack the settings name and return its row (see the module doc)."""
    settings = settings or get_settings()
    train = {**TRAIN, **(train or {})}
    store = ObjectStore(settings)
    app = db.create_engine_for(settings)
    try:
        db.upgrade(app)
        init_default_model(settings, store)
        milestone = prepare_milestone(app, store)
    finally:
        app.dispose()
    conf = {
        "milestone": milestone,
        "selection_count": milestone * SELECTIONS_PER_RETRAIN,
        "train": train,
        "evaluation": {**EVALUATION, **(evaluation or {})},
    }
    checkpoints = CheckpointStore(retrain.checkpoint_uri(milestone), store)
    with AirflowClient(settings) as airflow:
        run_id = airflow.start_dag_run(RETRAIN_DAG_ID, conf, run_id=f"fault_training_{uuid.uuid4().hex[:8]}")
        kill = kill_training_mid_run(airflow, checkpoints, run_id, timeout_s)
        final = airflow.wait_for_dag_run(RETRAIN_DAG_ID, run_id, timeout_s=timeout_s)
        tries = airflow.task_tries(RETRAIN_DAG_ID, run_id, TRAIN_TASK)
        edge_jobs = _edge_jobs(airflow, run_id)
    ledger = read_ledger(settings, milestone, train["steps"])
    return FaultReport(
        fault=FAULT,
        unit=UNIT,
        accepted=1,
        in_flight=1,
        lost=count_lost(final["state"], ledger, train["steps"]),
        duplicated=count_duplicates(ledger),
        recovery_s=round(_seconds_to_recover(tries, kill), 1),
        details={
            "run_id": run_id,
            "run_state": final["state"],
            "milestone": milestone,
            "conf": conf,
            "kill": kill.__dict__,
            "tries": [_try_row(t) for t in tries],
            "edge_jobs": edge_jobs,
            **ledger,
        },
    )


def _try_row(task_try: dict[str, Any]) -> dict[str, Any]:
    """What a try of the training task says about where it ran and how it ended."""
    keys = ("try_number", "state", "executor", "queue", "pool", "hostname", "pid", "start_date", "end_date")
    return {key: task_try.get(key) for key in keys}


def _edge_jobs(airflow: AirflowClient, run_id: str) -> list[dict[str, Any]]:
    """The Edge executor's jobs of the run (empty where the stack's Airflow has no Edge executor)."""
    try:
        jobs = airflow.edge_jobs(RETRAIN_DAG_ID, run_id)
    except AirflowError as exc:
        if exc.status == 404:
            return []
        raise
    keys = ("task_id", "try_number", "state", "queue", "edge_worker")
    return [{key: job.get(key) for key in keys} for job in jobs]
