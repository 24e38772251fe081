"""SQL of ``dataset_snapshots``, ``dataset_clips`` and ``etl_runs``: curated snapshots and their loads.

Why one module: a snapshot is published by one transaction that writes all three tables (and the
dashboard's copy of its numbers), and "a snapshot is loaded once" rests on the check before the load
and the check inside that transaction reading the same row, under a lock per snapshot id. Which
clips go in and what the numbers say stays with the caller, ``etl.load``; the simulator reads the
latest snapshot's numbers back to find its prompt pool.

Every DAG run has one ``etl_runs`` row: ``running`` from its first step (``start_run``), then
``succeeded`` (by the publishing transaction, or ``finish_run`` when the snapshot was published
before) or ``failed`` with the reason in ``stats`` (``finish_run``, from the failed task).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

# dashboard_stats keys: the latest snapshot's numbers (what the simulator samples prompts by) and each one's.
LATEST_SNAPSHOT_STATS_KEY = "dataset.latest"


def snapshot_stats_key(snapshot_id: str) -> str:
    return f"dataset.snapshot.{snapshot_id}"


@dataclass(frozen=True)
class SnapshotClip:
    """One ``dataset_clips`` row, fields named as its columns; the probe fields describe the shipped file."""

    source: str
    clip_id: str
    source_video_id: str
    caption: str
    normalized_caption: str
    tags: list[str]
    aesthetic_score: float | None
    motion_score: float | None
    temporal_score: float | None
    duration_s: float
    fps: float
    frames: int
    width: int
    height: int
    split: str
    object_key: str
    checksum_sha256: str


# Serialises concurrent loads of one snapshot (or writers of one run's row) until the transaction ends.
_LOCK = "select pg_advisory_xact_lock(hashtext(:key))"
_LATEST_RUN = "select id from etl_runs where dag_run_id = :dag_run_id order by id desc limit 1"
_INSERT_RUN = """
insert into etl_runs (dag_run_id, status, finished_at, stats)
values (:dag_run_id, :status, case when cast(:status as text) = 'running' then null else now() end,
    cast(:stats as jsonb))
returning id
"""
_FINISH_RUN = """
update etl_runs set status = :status, finished_at = now(), stats = stats || cast(:stats as jsonb)
where id = :id
"""
_INSERT_SNAPSHOT = """
insert into dataset_snapshots (snapshot_id, manifest_object_key, row_counts, stats)
values (:id, :key, cast(:counts as jsonb), cast(:stats as jsonb))
"""
_LINK_RUN = "update etl_runs set snapshot_id = :id where id = :run"
_PUT_DASHBOARD_STATS = """
insert into dashboard_stats (key, value) values (:key, cast(:value as jsonb))
on conflict (key) do update set value = excluded.value
"""
_INSERT_CLIP = """
insert into dataset_clips (snapshot_id, etl_run_id, source, clip_id, source_video_id, caption,
    normalized_caption, tags, aesthetic_score, motion_score, temporal_score, duration_s, fps, frames,
    width, height, split, object_key, checksum_sha256)
values (:snapshot_id, :etl_run_id, :source, :clip_id, :source_video_id, :caption,
    :normalized_caption, :tags, :aesthetic_score, :motion_score, :temporal_score, :duration_s, :fps, :frames,
    :width, :height, :split, :object_key, :checksum_sha256)
on conflict (snapshot_id, source, clip_id) do nothing
"""


def _snapshot_row_exists(conn: Connection, snapshot_id: str) -> bool:
    found = conn.execute(text("select 1 from dataset_snapshots where snapshot_id = :id"), {"id": snapshot_id})
    return found.first() is not None


def snapshot_exists(engine: Engine, snapshot_id: str) -> bool:
    """Whether the snapshot was published (its row is committed)."""
    with engine.connect() as conn:
        return _snapshot_row_exists(conn, snapshot_id)


def latest_snapshot_stats(engine: Engine) -> dict[str, Any] | None:
    """The latest published snapshot's numbers, its ``snapshot_id`` among them; None before the first.

    Read from the dashboard's copy rather than ``dataset_snapshots`` because that copy is what
    "latest" means to every reader: ``publish_snapshot`` rewrites it in the publishing transaction.
    """
    with engine.connect() as conn:
        return conn.execute(
            text("select value from dashboard_stats where key = :key"), {"key": LATEST_SNAPSHOT_STATS_KEY}
        ).scalar_one_or_none()


def snapshot_clips(engine: Engine, snapshot_id: str, split: str) -> list[SnapshotClip]:
    """The clips of one split of a snapshot, in a stable order (source, clip id)."""
    columns = ", ".join(SnapshotClip.__dataclass_fields__)
    query = text(
        f"select {columns} from dataset_clips where snapshot_id = :id and split = :split "
        "order by source, clip_id"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"id": snapshot_id, "split": split}).mappings()
        return [SnapshotClip(**row) for row in rows]


def _run_row(conn: Connection, dag_run_id: str | None, status: str, stats: dict[str, Any]) -> int:
    """Set the DAG run's row to ``status`` (its latest row: a cleared task may run again after a
    failure) with ``stats`` merged in, or insert it; a run without a DAG run id always gets a new row."""
    values = {"dag_run_id": dag_run_id, "status": status, "stats": json.dumps(stats)}
    if dag_run_id is not None:
        conn.execute(text(_LOCK), {"key": "etl_run:" + dag_run_id})
        found = conn.execute(text(_LATEST_RUN), values).scalar_one_or_none()
        if found is not None:
            if status != "running":
                conn.execute(text(_FINISH_RUN), {**values, "id": found})
            return found
    return conn.execute(text(_INSERT_RUN), values).scalar_one()


def start_run(engine: Engine, dag_run_id: str, stats: dict[str, Any]) -> int:
    """The run's row, inserted as ``running`` unless it has one (a retried first step); its id."""
    with engine.begin() as conn:
        return _run_row(conn, dag_run_id, "running", stats)


def finish_run(engine: Engine, dag_run_id: str | None, status: str, stats: dict[str, Any]) -> int:
    """Mark the run ``succeeded`` or ``failed`` with ``stats`` (the reason of a failure among them)
    merged into its row; a run that failed before its first step recorded it gets its row now."""
    if status not in ("succeeded", "failed"):
        raise ValueError(f"a finished run is 'succeeded' or 'failed', not {status!r}")
    with engine.begin() as conn:
        return _run_row(conn, dag_run_id, status, stats)


def publish_snapshot(
    engine: Engine,
    snapshot_id: str,
    manifest_key: str,
    stats: dict[str, Any],
    clips: Sequence[SnapshotClip],
    dag_run_id: str | None,
    before_commit: Callable[[], None] | None = None,
) -> int:
    """Record the snapshot, its clips, the dashboard's numbers and the run's success in one transaction.

    ``stats`` must be JSON-ready; its ``splits`` are the snapshot's row counts. Concurrent loads of
    the same snapshot are serialised: the loser finds the row and inserts nothing. ``before_commit``
    runs once every row is in, inside the transaction (the manifest is written there, so it appears
    only with the rows; an error it raises rolls them back). Returns the number of clips inserted.
    """
    stats_json = json.dumps(stats)
    with engine.begin() as conn:
        conn.execute(text(_LOCK), {"key": "snapshot:" + snapshot_id})
        if _snapshot_row_exists(conn, snapshot_id):
            return 0
        run_id = _run_row(conn, dag_run_id, "succeeded", stats)
        counts = json.dumps(stats.get("splits", {}))
        snapshot = {"id": snapshot_id, "key": manifest_key, "counts": counts, "stats": stats_json}
        conn.execute(text(_INSERT_SNAPSHOT), snapshot)
        conn.execute(text(_LINK_RUN), {"id": snapshot_id, "run": run_id})
        row = {"snapshot_id": snapshot_id, "etl_run_id": run_id}
        inserted = sum(conn.execute(text(_INSERT_CLIP), {**asdict(clip), **row}).rowcount for clip in clips)
        _put_dashboard_stats(conn, snapshot_id, stats)
        if before_commit is not None:
            before_commit()
    return inserted


def _put_dashboard_stats(conn: Connection, snapshot_id: str, stats: dict[str, Any]) -> None:
    value = json.dumps({"snapshot_id": snapshot_id, **stats})
    for key in (LATEST_SNAPSHOT_STATS_KEY, snapshot_stats_key(snapshot_id)):
        conn.execute(text(_PUT_DASHBOARD_STATS), {"key": key, "value": value})
