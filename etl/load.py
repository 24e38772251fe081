"""Publish a curated snapshot: objects to ``adfame-datasets``, rows to PostgreSQL in one transaction.

Idempotent by snapshot id: objects have deterministic keys (an object already there
with the same size is not uploaded again) and a snapshot whose row exists is not
loaded twice, so re-running the same night adds nothing. Objects go up first and
the rows are committed last, so a crash in between leaves no rows pointing at
missing objects; the re-run finishes the job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from adfame.contracts import DATASETS_BUCKET
from adfame.storage import ObjectStore

log = logging.getLogger(__name__)
SOURCE_OPENVID = "openvid"


@dataclass(frozen=True)
class LoadResult:
    snapshot_id: str
    already_loaded: bool
    clips_inserted: int
    objects_uploaded: int
    manifest_key: str


def snapshot_prefix(snapshot_id: str) -> str:
    return f"snapshots/{snapshot_id}"


def clip_key(snapshot_id: str, split: str, video: str) -> str:
    return f"{snapshot_prefix(snapshot_id)}/clips/{split}/{video}"


def _upload_once(store: ObjectStore, key: str, path: Path, content_type: str) -> bool:
    existing = store.stat(DATASETS_BUCKET, key)
    if existing is not None and existing.size == path.stat().st_size:
        return False
    store.put_file(DATASETS_BUCKET, key, path, content_type=content_type)
    return True


def snapshot_exists(engine: Engine, snapshot_id: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            text("select 1 from dataset_snapshots where snapshot_id = :id"), {"id": snapshot_id}
        ).first()
    return found is not None


def load_snapshot(
    snapshot_id: str,
    dataset: pd.DataFrame,
    images: list[Path],
    extra_files: dict[str, Path],
    stats: dict[str, Any],
    config: dict[str, Any],
    store: ObjectStore,
    engine: Engine,
    dag_run_id: str | None = None,
) -> LoadResult:
    """Upload clips, images, reports and the manifest, then insert all rows in one transaction.

    ``dataset`` rows carry ``video``, ``split``, ``local_path``, ``sha256`` and the clip's metadata;
    ``extra_files`` maps a name under the snapshot prefix (``validation.json``, ``prompts.parquet``)
    to a local file.
    """
    prefix = snapshot_prefix(snapshot_id)
    manifest_key = f"{prefix}/manifest.json"
    if snapshot_exists(engine, snapshot_id):
        log.info("snapshot %s is already loaded; nothing to do", snapshot_id)
        return LoadResult(snapshot_id, True, 0, 0, manifest_key)

    uploaded = 0
    rows = []
    for i, clip in enumerate(dataset.itertuples(index=False), start=1):
        key = clip_key(snapshot_id, clip.split, clip.video)
        uploaded += _upload_once(store, key, Path(clip.local_path), "video/mp4")
        rows.append({**clip._asdict(), "object_key": key})
        if i % 50 == 0 or i == len(dataset):
            log.info("uploaded %d/%d clips of snapshot %s", i, len(dataset), snapshot_id)
    image_keys = []
    for image in images:
        key = f"{prefix}/images/{image.name}"
        uploaded += _upload_once(store, key, image, "image/png")
        image_keys.append(key)
    extra_keys = {}
    for name, path in extra_files.items():
        key = f"{prefix}/{name}"
        uploaded += _upload_once(store, key, path, "application/octet-stream")
        extra_keys[name] = key

    manifest = {
        "snapshot_id": snapshot_id,
        "dag_run_id": dag_run_id,
        "bucket": DATASETS_BUCKET,
        "config": config,
        "stats": stats,
        "files": extra_keys,
        "images": image_keys,
        "clips": [
            {
                k: r[k]
                for k in (
                    "video",
                    "source_video_id",
                    "caption",
                    "tags",
                    "split",
                    "object_key",
                    "sha256",
                    "frames",
                    "fps",
                    "seconds",
                    "width",
                    "height",
                )
            }
            for r in rows
        ],
    }
    store.put_bytes(
        DATASETS_BUCKET,
        manifest_key,
        json.dumps(manifest, indent=1, default=_json_default).encode(),
        content_type="application/json",
    )
    uploaded += 1

    inserted = _insert_rows(engine, snapshot_id, rows, manifest_key, stats, dag_run_id)
    log.info(
        "snapshot %s loaded: %d clips inserted, %d objects uploaded, manifest s3://%s/%s",
        snapshot_id,
        inserted,
        uploaded,
        DATASETS_BUCKET,
        manifest_key,
    )
    return LoadResult(snapshot_id, False, inserted, uploaded, manifest_key)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _insert_rows(
    engine: Engine,
    snapshot_id: str,
    rows: list[dict[str, Any]],
    manifest_key: str,
    stats: dict[str, Any],
    dag_run_id: str | None,
) -> int:
    stats_json = json.dumps(stats, default=_json_default)
    with engine.begin() as conn:
        # Serialise concurrent loads of the same snapshot: the loser sees the row and stops.
        conn.execute(text("select pg_advisory_xact_lock(hashtext(:id))"), {"id": "snapshot:" + snapshot_id})
        if conn.execute(
            text("select 1 from dataset_snapshots where snapshot_id = :id"), {"id": snapshot_id}
        ).first():
            return 0
        run_id = conn.execute(
            text(
                "insert into etl_runs (dag_run_id, status, finished_at, stats) "
                "values (:dag_run_id, 'succeeded', now(), cast(:stats as jsonb)) returning id"
            ),
            {"dag_run_id": dag_run_id, "stats": stats_json},
        ).scalar_one()
        conn.execute(
            text(
                "insert into dataset_snapshots (snapshot_id, manifest_object_key, row_counts, stats) "
                "values (:id, :key, cast(:counts as jsonb), cast(:stats as jsonb))"
            ),
            {
                "id": snapshot_id,
                "key": manifest_key,
                "counts": json.dumps(stats.get("splits", {})),
                "stats": stats_json,
            },
        )
        conn.execute(
            text("update etl_runs set snapshot_id = :id where id = :run"), {"id": snapshot_id, "run": run_id}
        )
        inserted = 0
        for r in rows:
            result = conn.execute(
                text("""
                insert into dataset_clips (snapshot_id, etl_run_id, source, clip_id, source_video_id, caption,
                    normalized_caption, tags, aesthetic_score, motion_score, temporal_score, duration_s, fps,
                    frames, width, height, split, object_key, checksum_sha256)
                values (:snapshot_id, :run, :source, :video, :source_video_id, :caption, :caption_norm,
                    :tags, :aesthetic, :motion, :temporal, :seconds, :fps, :frames, :width, :height, :split,
                    :object_key, :sha256)
                on conflict (snapshot_id, source, clip_id) do nothing
                """),
                {
                    "snapshot_id": snapshot_id,
                    "run": run_id,
                    "source": SOURCE_OPENVID,
                    "video": r["video"],
                    "source_video_id": r["source_video_id"],
                    "caption": r["caption"],
                    "caption_norm": r["caption_norm"],
                    "tags": list(r["tags"]),
                    "aesthetic": r.get("aesthetic"),
                    "motion": r.get("motion"),
                    "temporal": r.get("temporal_consistency"),
                    "seconds": float(r["seconds"]),
                    "fps": float(r["fps"]),
                    "frames": int(r["frames"]),
                    "width": int(r["width"]),
                    "height": int(r["height"]),
                    "split": r["split"],
                    "object_key": r["object_key"],
                    "sha256": r["sha256"],
                },
            )
            inserted += result.rowcount
        for key in ("dataset.latest", f"dataset.snapshot.{snapshot_id}"):
            conn.execute(
                text(
                    "insert into dashboard_stats (key, value) values (:key, cast(:value as jsonb)) "
                    "on conflict (key) do update set value = excluded.value"
                ),
                {
                    "key": key,
                    "value": json.dumps({"snapshot_id": snapshot_id, **stats}, default=_json_default),
                },
            )
    return inserted
