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
from sqlalchemy import Engine

from adfame.contracts import DATASETS_BUCKET
from adfame.repositories import datasets
from adfame.repositories.datasets import SnapshotClip
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
    if datasets.snapshot_exists(engine, snapshot_id):
        log.info("snapshot %s is already loaded; nothing to do", snapshot_id)
        return LoadResult(snapshot_id, True, 0, 0, manifest_key)

    stats = _json_ready(stats)
    clips, clips_uploaded = _upload_clips(store, snapshot_id, dataset)
    image_keys, images_uploaded = _upload_files(
        store, f"{prefix}/images", {image.name: image for image in images}, "image/png"
    )
    extra_keys, extras_uploaded = _upload_files(store, prefix, extra_files, "application/octet-stream")
    manifest = {
        "snapshot_id": snapshot_id,
        "dag_run_id": dag_run_id,
        "bucket": DATASETS_BUCKET,
        "config": config,
        "stats": stats,
        "files": extra_keys,
        "images": list(image_keys.values()),
        "clips": [_manifest_entry(clip) for clip in clips],
    }
    body = json.dumps(manifest, indent=1, default=_json_default).encode()
    store.put_bytes(DATASETS_BUCKET, manifest_key, body, content_type="application/json")
    uploaded = clips_uploaded + images_uploaded + extras_uploaded + 1

    inserted = datasets.publish_snapshot(engine, snapshot_id, manifest_key, stats, clips, dag_run_id)
    log.info(
        "snapshot %s loaded: %d clips inserted, %d objects uploaded, manifest s3://%s/%s",
        snapshot_id,
        inserted,
        uploaded,
        DATASETS_BUCKET,
        manifest_key,
    )
    return LoadResult(snapshot_id, False, inserted, uploaded, manifest_key)


def _upload_clips(
    store: ObjectStore, snapshot_id: str, dataset: pd.DataFrame
) -> tuple[list[SnapshotClip], int]:
    """Each clip under its split's folder; returns the rows to insert and how many objects went up."""
    clips: list[SnapshotClip] = []
    uploaded = 0
    for i, row in enumerate(dataset.itertuples(index=False), start=1):
        clip = _snapshot_clip(row._asdict(), clip_key(snapshot_id, row.split, row.video))
        uploaded += _upload_once(store, clip.object_key, Path(row.local_path), "video/mp4")
        clips.append(clip)
        if i % 50 == 0 or i == len(dataset):
            log.info("uploaded %d/%d clips of snapshot %s", i, len(dataset), snapshot_id)
    return clips, uploaded


def _upload_files(
    store: ObjectStore, prefix: str, files: dict[str, Path], content_type: str
) -> tuple[dict[str, str], int]:
    """``name -> key`` for files stored as ``<prefix>/<name>``, and how many objects went up."""
    keys = {name: f"{prefix}/{name}" for name in files}
    uploaded = sum(_upload_once(store, keys[name], path, content_type) for name, path in files.items())
    return keys, uploaded


def _snapshot_clip(row: dict[str, Any], object_key: str) -> SnapshotClip:
    """A dataset row (curated metadata merged with the resized file's probe) as its table row."""
    return SnapshotClip(
        source=SOURCE_OPENVID,
        clip_id=row["video"],
        source_video_id=row["source_video_id"],
        caption=row["caption"],
        normalized_caption=row["caption_norm"],
        tags=list(row["tags"]),
        aesthetic_score=row.get("aesthetic"),
        motion_score=row.get("motion"),
        temporal_score=row.get("temporal_consistency"),
        duration_s=float(row["seconds"]),
        fps=float(row["fps"]),
        frames=int(row["frames"]),
        width=int(row["width"]),
        height=int(row["height"]),
        split=row["split"],
        object_key=object_key,
        checksum_sha256=row["sha256"],
    )


def _manifest_entry(clip: SnapshotClip) -> dict[str, Any]:
    """A clip as the manifest lists it, in the dataset's own names (what the training loader reads)."""
    return {
        "video": clip.clip_id,
        "source_video_id": clip.source_video_id,
        "caption": clip.caption,
        "tags": clip.tags,
        "split": clip.split,
        "object_key": clip.object_key,
        "sha256": clip.checksum_sha256,
        "frames": clip.frames,
        "fps": clip.fps,
        "seconds": clip.duration_s,
        "width": clip.width,
        "height": clip.height,
    }


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _json_ready(value: dict[str, Any]) -> dict[str, Any]:
    """numpy numbers and arrays as plain JSON values, once, for the manifest and the tables alike."""
    return json.loads(json.dumps(value, default=_json_default))
