"""retrain_on_feedback end to end, once, on the real stack: a milestone of 200 selections becomes a
registered version with its lineage and a gate decision; registering again adds nothing; a bad conf fails
the first task; ``adfame lineage`` follows a request of the new version back to the selections.

The DAG's tasks run in the test stack's Airflow with the stack's settings, so the selections go into the
stack's app database (its schema brought up to date first): the next whole milestone there. The run is
sized for CI (a few training steps, a few held-out videos); learning figures belong to bench/.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from api_support import complete_request, make_mp4
from sqlalchemy import Engine, text

from adfame import db
from adfame.airflow_client import AirflowClient
from adfame.contracts import CHALLENGER_ALIAS, RETRAIN_DAG_ID, SELECTIONS_PER_RETRAIN, VIDEOS_BUCKET
from adfame.mlflow_setup import configure_mlflow
from adfame.repositories.requests import Outcome, finish_request, record_request
from adfame.repositories.selections import insert_milestone, insert_selection, mark_triggered
from adfame.schemas import PromptRequest, RetrainConf
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.model import init_default_model
from training import retrain
from training.config import TrainConfig
from training.registry import LineageTag, milestone_version

pytestmark = pytest.mark.integration
ADFAME = str(Path(sys.executable).parent / "adfame")
TENANT = "retrainer"
CANDIDATES = 2
CONF_OVERRIDES = {
    "train": {"steps": 3, "batch_size": 2, "checkpoint_every": 2, "log_every": 1, "rank": 4, "alpha": 4},
    "evaluation": {
        "heldout_pairs": 2,
        "heldout_prompts": 1,
        "margin_draws": 1,
        "num_frames": 5,
        "height": 32,
        "width": 32,
        "fairness_subjects": ["young woman", "old man"],
    },
}


def next_milestone(app: Engine, store: ObjectStore) -> int:
    """Fill the stack's current milestone with rows only, then make the next one of 200 real selections
    (two real mp4 candidates each, the first picked); returns its number."""
    with app.connect() as conn:
        count = conn.execute(text("select count(*) from selections")).scalar_one()
    fill = -count % SELECTIONS_PER_RETRAIN
    videos = [make_mp4(shade, frames=5, size=32) for shade in range(CANDIDATES)]  # small: 320 clips to encode
    ids = []
    for number in range(fill + SELECTIONS_PER_RETRAIN):
        request = PromptRequest(tenant=TENANT, prompt=f"sneakers on a running track, take {number}")
        record_request(app, request)
        real = number >= fill
        keys = complete_request(app, None, request.request_id, TENANT, candidates=CANDIDATES)
        for key, video in zip(keys if real else [], videos, strict=False):
            store.put_bytes(VIDEOS_BUCKET, key, video, content_type="video/mp4")
        ids.append(request.request_id)
    with app.begin() as conn:
        for request_id in ids:
            insert_selection(conn, request_id, 0, TENANT)
    return (count + fill) // SELECTIONS_PER_RETRAIN + 1


def served_request(app: Engine, version_label: str) -> uuid.UUID:
    """A request the new version served, as a worker records it."""
    request = PromptRequest(tenant=TENANT, prompt="a sneaker rotates on a pedestal")
    record_request(app, request)
    outcome = Outcome(status="succeeded", route="challenger", model_version=version_label, timings={})
    finish_request(app, request.request_id, outcome)
    return request.request_id


@pytest.mark.timeout(900)  # one DAG run of five tasks, each a fresh Airflow task process
def test_a_milestone_becomes_a_gated_version_with_its_lineage(settings: Settings) -> None:
    store = ObjectStore(settings)
    app = db.create_engine_for(settings)
    db.upgrade(app)
    init_default_model(settings, store)
    milestone = next_milestone(app, store)
    # The LoRA starts from the champion of the moment when its adapter has the run's shape (else fresh).
    champion = retrain.champion_version(configure_mlflow(settings), settings)
    start = retrain.warm_start(champion, TrainConfig(**CONF_OVERRIDES["train"]), settings)
    conf = {"milestone": milestone, "selection_count": milestone * SELECTIONS_PER_RETRAIN, **CONF_OVERRIDES}
    with AirflowClient(settings) as airflow:
        run = airflow.run_dag(
            RETRAIN_DAG_ID, conf, run_id=f"test_retrain_{uuid.uuid4().hex[:8]}", timeout_s=900
        )
        states = {ti["task_id"]: ti["state"] for ti in run.task_instances}
        assert run.succeeded, states
        assert {ti["task_id"]: ti["pool"] for ti in run.task_instances}["train_step"] == settings.gpu_pool
        evaluated = airflow.request(
            "GET",
            f"/api/v2/dags/{RETRAIN_DAG_ID}/dagRuns/{run.run_id}/taskInstances/evaluate_step/xcomEntries/return_value",
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
    assert tags[LineageTag.PARENT_VERSION] == (start.version if start else "none")
    run_id = tags[LineageTag.TRAINING_RUN]
    assert len(client.get_metric_history(run_id, "loss")) == 3
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
    mark_triggered(app, milestone, RETRAIN_DAG_ID, run.run_id)
    shown = subprocess.run(
        [ADFAME, "retrain", "show", "--milestone", str(milestone), "--wait", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{run.run_id} success" in shown.stdout
    assert f"version {version.name}/{version.version}" in shown.stdout and run_id in shown.stdout
    assert "challenger_heldout_preference_accuracy" in shown.stdout
    app.dispose()
