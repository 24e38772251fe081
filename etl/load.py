"""Publish a curated snapshot: objects to ``adfame-datasets``, rows to PostgreSQL in one transaction.

What a reader sees is all or nothing. The clips, images and reports go up first, under
``snapshots/<id>/``, but nothing reads a snapshot by listing that prefix: a snapshot exists once its
``dataset_snapshots`` row is committed, and its ``manifest.json`` is written inside that same
transaction, just before the commit, so the manifest and the rows appear together. Before anything is
written every row is checked (``publishable_problems``): a value the tables cannot hold (a NUL, a
non-finite number) fails the load at once, naming the clip, the column and the reason. A load that
fails after writing removes what it wrote under the prefix (unless another load published the
snapshot meanwhile), so a re-run of the same snapshot starts clean and succeeds.

Idempotent by snapshot id: objects have deterministic keys (an object already there with the same size
is not uploaded again) and a snapshot whose row exists is not loaded twice, so re-running the same
night adds nothing.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from adfame.contracts import DATASETS_BUCKET
from adfame.repositories import datasets
from adfame.repositories.datasets import SnapshotClip
from adfame.storage import ObjectStore
from etl.errors import ClipProblem, UnpublishableClips
from etl.split import SPLITS
from spark_jobs.text import CONTROL_CHARACTERS

log = logging.getLogger(__name__)
SOURCE_OPENVID = "openvid"
_CONTROL = re.compile(CONTROL_CHARACTERS)
# dataset_clips columns that must be positive numbers (its CHECK constraints) and ones that may be null.
_POSITIVE = ("duration_s", "fps", "frames", "width", "height")
_OPTIONAL_NUMBERS = ("aesthetic_score", "motion_score", "temporal_score")


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
    """Check every row, upload clips, images and reports, then insert all rows and write the manifest in
    one transaction; on any failure after the check, remove what was written.

    ``dataset`` rows carry ``video``, ``split``, ``local_path``, ``sha256`` and the clip's metadata;
    ``extra_files`` maps a name under the snapshot prefix (``validation.json``, ``prompts.parquet``)
    to a local file. Raises ``UnpublishableClips`` (nothing written) for values the tables cannot hold.
    """
    prefix = snapshot_prefix(snapshot_id)
    manifest_key = f"{prefix}/manifest.json"
    if datasets.snapshot_exists(engine, snapshot_id):
        log.info("snapshot %s is already loaded; nothing to do", snapshot_id)
        return LoadResult(snapshot_id, True, 0, 0, manifest_key)
    rows = [row._asdict() for row in dataset.itertuples(index=False)]
    clips = [_snapshot_clip(row, clip_key(snapshot_id, row["split"], row["video"])) for row in rows]
    problems = publishable_problems(clips)
    if problems:
        raise UnpublishableClips(snapshot_id, problems)

    stats = _json_ready(stats)
    try:
        uploaded, objects = _upload_objects(
            store, snapshot_id, clips, [Path(row["local_path"]) for row in rows], images, extra_files
        )
        manifest = {"snapshot_id": snapshot_id, "dag_run_id": dag_run_id, "bucket": DATASETS_BUCKET}
        entries = {**manifest, "config": config, "stats": stats, **objects}
        body = json.dumps(entries, indent=1, default=_json_default).encode()

        def write_manifest() -> None:
            store.put_bytes(DATASETS_BUCKET, manifest_key, body, content_type="application/json")

        inserted = datasets.publish_snapshot(
            engine, snapshot_id, manifest_key, stats, clips, dag_run_id, before_commit=write_manifest
        )
    except BaseException:
        _withdraw(store, engine, snapshot_id)
        raise
    log.info(
        "snapshot %s loaded: %d clips inserted, %d objects uploaded, manifest s3://%s/%s",
        snapshot_id,
        inserted,
        uploaded + 1,
        DATASETS_BUCKET,
        manifest_key,
    )
    return LoadResult(snapshot_id, False, inserted, uploaded + 1, manifest_key)


def _upload_objects(
    store: ObjectStore,
    snapshot_id: str,
    clips: list[SnapshotClip],
    clip_files: list[Path],
    images: list[Path],
    extra_files: dict[str, Path],
) -> tuple[int, dict[str, Any]]:
    """Every object but the manifest; returns how many went up and the manifest's lists of them
    (``files``, ``images``, ``clips``)."""
    prefix = snapshot_prefix(snapshot_id)
    uploaded = 0
    for i, (clip, path) in enumerate(zip(clips, clip_files, strict=True), start=1):
        uploaded += _upload_once(store, clip.object_key, path, "video/mp4")
        if i % 50 == 0 or i == len(clips):
            log.info("uploaded %d/%d clips of snapshot %s", i, len(clips), snapshot_id)
    image_keys, images_uploaded = _upload_files(
        store, f"{prefix}/images", {image.name: image for image in images}, "image/png"
    )
    extra_keys, extras_uploaded = _upload_files(store, prefix, extra_files, "application/octet-stream")
    objects = {
        "files": extra_keys,
        "images": list(image_keys.values()),
        "clips": [_manifest_entry(clip) for clip in clips],
    }
    return uploaded + images_uploaded + extras_uploaded, objects


def _withdraw(store: ObjectStore, engine: Engine, snapshot_id: str) -> None:
    """After a failed load, remove every object under the snapshot's prefix, the manifest first,
    unless the snapshot is published (another load finished it meanwhile). A failure to clean up is
    logged, not raised: the load's own error is the one to report, and a re-run finishes the job."""
    prefix = snapshot_prefix(snapshot_id) + "/"
    try:
        if datasets.snapshot_exists(engine, snapshot_id):
            return
        keys = sorted(
            (o.key for o in store.list(DATASETS_BUCKET, prefix)), key=lambda k: k != prefix + "manifest.json"
        )
        for key in keys:
            store.remove(DATASETS_BUCKET, key)
        log.warning(
            "load of snapshot %s failed: removed the %d objects it had written", snapshot_id, len(keys)
        )
    except Exception as error:  # the load's own error follows; a re-run overwrites and finishes
        log.error(
            "load of snapshot %s failed and s3://%s/%s could not be cleaned up (%s): re-run the load or "
            "remove the prefix by hand",
            snapshot_id,
            DATASETS_BUCKET,
            prefix,
            error,
        )


def publishable_problems(clips: list[SnapshotClip]) -> list[ClipProblem]:
    """Every value the tables or the manifest cannot hold, or their checks refuse: control characters in
    text (PostgreSQL refuses NUL), an unknown split, numbers that are not finite or not positive."""
    problems = []
    for clip in clips:
        for column, value in asdict(clip).items():
            reason = _value_problem(column, value)
            if reason is not None:
                problems.append(ClipProblem(clip.clip_id, column, reason))
    return problems


def _value_problem(column: str, value: Any) -> str | None:
    texts = value if column == "tags" else [value] if isinstance(value, str) else []
    for text in texts:
        found = _CONTROL.search(text)
        if found is not None:
            return f"holds the control character U+{ord(found.group()):04X} at position {found.start()}"
    if column == "split" and value not in SPLITS:
        return f"{value!r} is not one of {', '.join(SPLITS)}"
    if column in _POSITIVE or (column in _OPTIONAL_NUMBERS and value is not None):
        number = float(value)
        if not math.isfinite(number):
            return f"{value} is not a finite number"
        if column in _POSITIVE and number <= 0:
            return f"{value} is not positive"
    return None


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
