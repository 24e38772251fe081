"""nightly_etl on generated mirrors served to the real hub client: one run end to end through the Airflow
REST API (its Spark jobs on the stack's Spark standalone cluster when the profile points there, as
tests/stack.env does), the same night again, the gate's failure paths by calling the steps as the DAG's
tasks do, and one failing DAG run (what `adfame dags trigger --wait` and `etl_runs` say about it). Damaged
data is in test_nightly_etl_damage.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import text

from adfame import db, spark_cluster
from adfame.airflow_client import AirflowClient
from adfame.contracts import DATASETS_BUCKET
from adfame.repositories.datasets import snapshot_stats_key
from adfame.settings import PROJECT_ROOT
from adfame.storage import ObjectStore
from adfame.waiting import WaitTimeout, wait_for
from devkit.hub_server import serve_mirror
from devkit.mirror import generate_mirror
from etl import pipeline
from etl.config import SourceConfig
from etl.load import snapshot_prefix
from operators.etl_step import EtlStepOperator

pytestmark = pytest.mark.integration
DAG_ID = "nightly_etl"
ADFAME = str(Path(sys.executable).parent / "adfame")
# What runs before the gate, in the DAG's order (the prompt pool and the images do not feed it).
STEPS_BEFORE_THE_GATE = (
    pipeline.fetch_metadata,
    pipeline.curate_clips,
    pipeline.extract_clips,
    pipeline.assign_splits,
)


@pytest.fixture(scope="module")
def airflow(settings) -> Iterator[AirflowClient]:
    with AirflowClient(settings) as client:
        client.wait_for_dag(DAG_ID, timeout_s=180)
        client.set_paused(DAG_ID, False)
        stop_scheduled_runs(client)
        yield client
        client.set_paused(DAG_ID, True)


@pytest.fixture(scope="module", autouse=True)
def schema() -> None:
    db.upgrade(db.engine())


def stop_scheduled_runs(client: AirflowClient) -> None:
    """Unpausing makes the scheduler start tonight's run against the real hub, which this machine cannot
    reach; it would hold the DAG's only run slot while it retries, so it is failed at once."""

    def scheduled_run() -> dict[str, Any] | None:
        runs = client.list_dag_runs(DAG_ID)
        return next(
            (r for r in runs if r["run_type"] == "scheduled" and r["state"] in ("queued", "running")), None
        )

    try:
        run = wait_for(scheduled_run, what=f"a scheduled {DAG_ID} run", timeout_s=15, interval_s=1)
    except WaitTimeout:
        return  # none started (the DAG had run tonight already): nothing to stop
    client.set_dag_run_state(DAG_ID, run["dag_run_id"], "failed")


def run_conf(endpoint: str, snapshot_id: str) -> dict[str, Any]:
    """A run's conf whose sources are a mirror behind a local hub endpoint."""
    return {
        "snapshot_id": snapshot_id,
        # The hub's dataset ids in full: a deployment file (`adfame etl demo` writes one) may point
        # them elsewhere, and a run's conf must win over it for the test to read this mirror.
        "sources": {**SourceConfig().model_dump(exclude={"hub_endpoint"}), "hub_endpoint": endpoint},
        "media": {"video_height": 32, "workers": 2},
    }


def nightly_etl_dag() -> Any:
    """The DAG as its file defines it (parsed here, as the dag processor parses it)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{DAG_ID}.py")).dags[DAG_ID]


def task_context(conf: dict[str, Any]) -> dict[str, Any]:
    """The part of an Airflow task's context that ``EtlStepOperator`` reads."""
    return {"dag_run": SimpleNamespace(conf=conf, run_id=f"test__{uuid.uuid4().hex[:10]}", run_after=None)}


def snapshot_objects(store: ObjectStore, snapshot_id: str) -> dict[str, str]:
    return {o.key: o.etag for o in store.list(DATASETS_BUCKET, snapshot_prefix(snapshot_id) + "/")}


def snapshot_rows(snapshot_id: str) -> int:
    with db.engine().connect() as conn:
        return conn.execute(
            text("select count(*) from dataset_clips where snapshot_id = :s"), {"s": snapshot_id}
        ).scalar_one()


def etl_runs(dag_run_id: str) -> list[dict[str, Any]]:
    with db.engine().connect() as conn:
        rows = conn.execute(
            text("select status, snapshot_id, finished_at, stats from etl_runs where dag_run_id = :r"),
            {"r": dag_run_id},
        )
        return [dict(row) for row in rows.mappings()]


def assert_ran_on_the_cluster(snapshot_id: str) -> None:
    """Each Spark job of the run was an application of the stack's cluster that finished there, with
    executors on the stack's worker (so its tasks, the caption-cleaning UDF included, ran on the worker)."""
    worker_id = spark_cluster.worker_status()["id"]
    for job in ("curate", "prompts"):
        name = pipeline.spark_app_name(job, snapshot_id)
        # The master marks an application finished once its driver (the Airflow task) has gone.
        (app,) = wait_for(
            lambda name=name: [a for a in spark_cluster.applications(name) if a["state"] == "FINISHED"],
            what=f"{name} finished on the Spark master",
            timeout_s=60,
        )
        ran = spark_cluster.executors(app["id"])
        assert ran, f"{name} ({app['id']}) had no executor on worker {worker_id}"
        assert {executor["appdesc"]["name"] for executor in ran} == {name}


def test_loads_a_snapshot_once_without_split_leakage(
    airflow, settings, spark_on_the_stacks_cluster, tmp_path_factory
) -> None:
    mirror = tmp_path_factory.mktemp("mirror-good")
    summary = generate_mirror(mirror, rows=3000, clips=48, parts=3, corrupt=2)
    snapshot_id = f"it-{uuid.uuid4().hex[:8]}"
    store = ObjectStore(settings)

    with serve_mirror(mirror) as endpoint:
        conf = run_conf(endpoint, snapshot_id)
        run = airflow.run_dag(DAG_ID, conf, run_id=f"test__{uuid.uuid4().hex[:10]}", timeout_s=600)
    tasks = {t["task_id"]: t["state"] for t in run.task_instances}
    assert run.state == "success", tasks
    if spark_on_the_stacks_cluster:  # the suite's profile (tests/stack.env) points nightly_etl at it
        assert_ran_on_the_cluster(snapshot_id)
    objects = snapshot_objects(store, snapshot_id)
    rows = snapshot_rows(snapshot_id)
    assert rows == len(summary.brand_clips) - len(summary.corrupt_clips)
    assert sum(k.endswith(".mp4") for k in objects) == rows
    assert f"{snapshot_prefix(snapshot_id)}/manifest.json" in objects
    assert any("/images/" in k for k in objects)

    with db.engine().connect() as conn:
        stats = conn.execute(
            text("select value from dashboard_stats where key = :k"), {"k": snapshot_stats_key(snapshot_id)}
        ).scalar_one()
        overlap = conn.execute(
            text("""
            select count(*) from (
              select normalized_caption as k from dataset_clips where snapshot_id = :s
              group by 1 having count(distinct split) > 1
              union all
              select source_video_id from dataset_clips where snapshot_id = :s
              group by 1 having count(distinct split) > 1) leaks"""),
            {"s": snapshot_id},
        ).scalar_one()
    assert overlap == 0
    assert stats["clips"] == rows and stats["corrupt"] == len(summary.corrupt_clips)
    assert set(stats["splits"]) == {"train", "val", "test"}
    (recorded,) = etl_runs(run.run_id)
    assert (recorded["status"], recorded["snapshot_id"]) == ("succeeded", snapshot_id)

    # The same night again: its load task finds the snapshot published and adds nothing to the bucket
    # or the tables (the steps before it only rewrite the run's work folder).
    rerun = EtlStepOperator(step=pipeline.load_snapshot).execute(task_context(conf))
    assert rerun["already_loaded"] is True
    assert snapshot_rows(snapshot_id) == rows
    assert snapshot_objects(store, snapshot_id) == objects


def test_a_failed_run_is_recorded_and_trigger_wait_says_why(airflow, stack_environment) -> None:
    """The one failing DAG run: a conf error fails the first task at once (no retry can fix it), the
    run's etl_runs row says failed and why, and `adfame dags trigger --wait` prints the error and log."""
    conf = json.dumps({"snapshot_id": "no spaces allowed"})
    command = [ADFAME, "dags", "trigger", DAG_ID, "--conf", conf, "--wait", "--timeout", "300"]
    result = subprocess.run(command, env=stack_environment, capture_output=True, text=True, timeout=360)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    run_id = re.search(rf"triggered {DAG_ID} run (\S+):", out).group(1)
    assert (
        "ingest.fetch_metadata: failed\n    error (try 1): BadRunConf: snapshot_id 'no spaces allowed'" in out
    )
    log_path = Path(re.search(r"    log: (\S+)", out).group(1))
    assert log_path.name == "attempt=1.log" and "BadRunConf" in log_path.read_text()
    (recorded,) = etl_runs(run_id)
    assert recorded["status"] == "failed" and recorded["finished_at"] is not None
    assert recorded["stats"]["failed_task"] == "ingest.fetch_metadata"
    assert recorded["stats"]["reason"].startswith("ingest.fetch_metadata: BadRunConf: snapshot_id")


@pytest.mark.parametrize(
    "variant", [{"broken_column": True}, {"clips": 12, "corrupt": 5}], ids=["broken-column", "corrupt-clips"]
)
def test_gate_stops_the_run_before_anything_is_loaded(settings, spark, tmp_path_factory, variant) -> None:
    mirror = tmp_path_factory.mktemp("mirror-bad")
    generate_mirror(mirror, **{"rows": 800, "clips": 24, "parts": 3, "corrupt": 1, **variant})
    snapshot_id = f"it-bad-{uuid.uuid4().hex[:8]}"

    with serve_mirror(mirror) as endpoint:
        context = task_context(run_conf(endpoint, snapshot_id))
        for step in STEPS_BEFORE_THE_GATE:
            EtlStepOperator(step=step).execute(context)
        # The gate's task fails at once (no retry can make bad data good), naming what failed.
        with pytest.raises(AirflowFailException, match="quality gate failed"):
            EtlStepOperator(step=pipeline.validate).execute(context)
    # The DAG never runs the load task after a failed gate (upstream_failed), and had it run anyway,
    # it would refuse: the report it needs says the gate failed.
    load_task = nightly_etl_dag().get_task("load.load_snapshot")
    assert "gate.validate" in load_task.upstream_task_ids and load_task.trigger_rule == "all_success"
    with pytest.raises(AirflowFailException, match="no passing validation report"):
        EtlStepOperator(step=pipeline.load_snapshot).execute(context)
    assert snapshot_objects(ObjectStore(settings), snapshot_id) == {}
    assert snapshot_rows(snapshot_id) == 0
    report = settings.state_dir / "etl" / snapshot_id / "validation.json"
    assert report.exists()
