"""nightly_etl end to end through the Airflow REST API, on generated mirrors served to the real hub client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adfame import db
from adfame.airflow_client import AirflowClient
from adfame.contracts import DATASETS_BUCKET
from adfame.storage import ObjectStore
from etl.config import SourceConfig
from etl.hub_mirror_server import serve_mirror
from etl.load import snapshot_prefix
from etl.mirror import generate_mirror

pytestmark = pytest.mark.integration
DAG_ID = "nightly_etl"


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
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for run in client.list_dag_runs(DAG_ID):
            if run["run_type"] == "scheduled" and run["state"] in ("queued", "running"):
                client.set_dag_run_state(DAG_ID, run["dag_run_id"], "failed")
                return
        time.sleep(1)


def run_etl(airflow: AirflowClient, mirror: Path, snapshot_id: str) -> tuple[dict, dict[str, str]]:
    """Trigger a run whose sources are the mirror behind a local hub endpoint; returns run and task states."""
    with serve_mirror(mirror) as endpoint:
        conf = {
            "snapshot_id": snapshot_id,
            # The hub's dataset ids in full: a deployment file (`adfame etl demo` writes one) may point
            # them elsewhere, and a run's conf must win over it for the test to read this mirror.
            "sources": {**SourceConfig().model_dump(exclude={"hub_endpoint"}), "hub_endpoint": endpoint},
            "media": {"video_height": 32, "workers": 2},
        }
        run_id = f"test__{uuid.uuid4().hex[:10]}"
        airflow.trigger_dag(DAG_ID, conf=conf, run_id=run_id)
        run = airflow.wait_for_dag_run(DAG_ID, run_id, timeout_s=600)
    tasks = {t["task_id"]: t["state"] for t in airflow.task_instances(DAG_ID, run_id)}
    return run, tasks


def snapshot_objects(store: ObjectStore, snapshot_id: str) -> dict[str, str]:
    return {o.key: o.etag for o in store.list(DATASETS_BUCKET, snapshot_prefix(snapshot_id) + "/")}


def snapshot_rows(snapshot_id: str) -> int:
    with db.engine().connect() as conn:
        return conn.execute(
            text("select count(*) from dataset_clips where snapshot_id = :s"), {"s": snapshot_id}
        ).scalar_one()


def test_loads_a_snapshot_once_without_split_leakage(airflow, settings, tmp_path_factory) -> None:
    mirror = tmp_path_factory.mktemp("mirror-good")
    summary = generate_mirror(mirror, rows=3000, clips=48, parts=3, corrupt=2)
    snapshot_id = f"it-{uuid.uuid4().hex[:8]}"
    store = ObjectStore(settings)

    run, tasks = run_etl(airflow, mirror, snapshot_id)
    assert run["state"] == "success", tasks
    objects = snapshot_objects(store, snapshot_id)
    rows = snapshot_rows(snapshot_id)
    assert rows == len(summary.brand_clips) - len(summary.corrupt_clips)
    assert sum(k.endswith(".mp4") for k in objects) == rows
    assert f"{snapshot_prefix(snapshot_id)}/manifest.json" in objects
    assert any("/images/" in k for k in objects)

    with db.engine().connect() as conn:
        stats = conn.execute(
            text("select value from dashboard_stats where key = :k"), {"k": f"dataset.snapshot.{snapshot_id}"}
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

    # The same night again: nothing new in the bucket or the tables.
    rerun, tasks = run_etl(airflow, mirror, snapshot_id)
    assert rerun["state"] == "success", tasks
    assert snapshot_rows(snapshot_id) == rows
    assert snapshot_objects(store, snapshot_id) == objects


@pytest.mark.parametrize(
    "variant", [{"broken_column": True}, {"clips": 12, "corrupt": 5}], ids=["broken-column", "corrupt-clips"]
)
def test_gate_stops_the_run_before_anything_is_loaded(airflow, settings, tmp_path_factory, variant) -> None:
    mirror = tmp_path_factory.mktemp("mirror-bad")
    generate_mirror(mirror, **{"rows": 800, "clips": 24, "parts": 3, "corrupt": 1, **variant})
    snapshot_id = f"it-bad-{uuid.uuid4().hex[:8]}"

    run, tasks = run_etl(airflow, mirror, snapshot_id)
    assert run["state"] == "failed"
    assert tasks["gate.validate"] == "failed"
    assert tasks["load.load_snapshot"] in ("upstream_failed", None)
    assert snapshot_objects(ObjectStore(settings), snapshot_id) == {}
    assert snapshot_rows(snapshot_id) == 0
    report = settings.state_dir / "etl" / snapshot_id / "validation.json"
    assert report.exists()
