"""Export a milestone's selections as a training set in the object store (issue 10, deliverable 2).

For milestone N, exactly the selections stamped with N (sql/V004__selection_milestones.sql), each with
its winner, its losers, their variation prompts and seeds, go to
``s3://adfame-datasets/exports/milestone-{N:05d}/`` in the layout of ``training.export_layout``.

Why it is built this way:

- **The same bytes every time.** The split is a hash of the request id (a re-run, or another machine,
  puts every selection on the same side), files list their lines in seq order, the optional curated
  sample is drawn with a fixed seed, and the manifest holds no clock. So a re-run after a crash writes
  what the first run would have written.
- **The manifest commits the export.** Videos and lists go up first, the manifest last: an export with
  a manifest is complete, and a second call finds it and returns it without writing anything. A call
  that asks for another cut of the same milestone (another held-out share) is refused, because a
  training run may already point at the manifest's URI. The manifest fingerprints the selections it
  holds; when the database's milestone holds others (rows deleted since, or another database writing
  to the same store, as the test suite's databases do), the database wins and the export is rewritten.
- **Fail before writing.** A milestone without selections, or a candidate whose video is gone, is a
  typed error naming the milestone and the object, raised before any object is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from adfame import db
from adfame.contracts import DATASETS_BUCKET, VIDEOS_BUCKET
from adfame.repositories.datasets import SnapshotClip, latest_snapshot_stats, snapshot_clips
from adfame.repositories.requests import Candidate
from adfame.repositories.selections import SelectionRecord, milestone_selections
from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore
from training.export_layout import (
    MANIFEST_NAME,
    PAIRS_NAME,
    PROMPTS_NAME,
    SPLITS,
    VIDEOS_FOLDER,
    VIDEOS_NAME,
    ExportManifest,
    Split,
    export_prefix,
    export_uri,
)

log = logging.getLogger(__name__)

SPLIT_SEED = 0
_COPY_THREADS = 8
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class ExportError(RuntimeError):
    """A milestone that cannot be exported; the message names the milestone and what is wrong."""


class EmptyMilestone(ExportError):
    """No selection is stamped with the milestone (it was never reached, or its rows were deleted)."""


class MissingCandidateVideo(ExportError):
    """A candidate of the milestone's selections has no video in the object store."""


class ExportMismatch(ExportError):
    """The milestone was exported already, cut differently (held-out share, curated sample)."""


@dataclass(frozen=True)
class VideoCopy:
    """One video the export copies: from where, to which path inside the export."""

    bucket: str
    key: str
    path: str


@dataclass(frozen=True)
class SplitFiles:
    """A split's lists (path inside the export -> bytes) and the videos they name."""

    lists: dict[str, bytes]
    videos: list[VideoCopy]


def is_heldout(request_id: object, heldout_share: float, split_seed: int = SPLIT_SEED) -> bool:
    """Whether a selection is kept aside: a stable hash of its request id, in [0, 1), below the share."""
    digest = hashlib.sha256(f"{split_seed}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < heldout_share


def export_milestone(
    milestone: int,
    *,
    settings: Settings | None = None,
    heldout_share: float = 0.2,
    curated_sample: int = 0,
    base_model: str | None = None,
    engine: Engine | None = None,
    store: ObjectStore | None = None,
) -> ExportManifest:
    """Export milestone ``milestone`` (once) and return its manifest; see the module docstring.

    ``base_model`` (default ``settings.model_source``) is the model the export is meant to train;
    ``engine`` and ``store`` default to the settings' database and object store.
    """
    if not 0.0 <= heldout_share < 1.0:
        raise ValueError(f"heldout_share must be in [0, 1), got {heldout_share}")
    settings = settings or get_settings()
    store = store or ObjectStore(settings)
    owned_engine = engine is None
    engine = engine or db.create_engine_for(settings)
    try:
        records = milestone_selections(engine, milestone)
        if not records:
            raise EmptyMilestone(f"milestone {milestone} has no selections to export")
        existing = _existing_manifest(store, milestone)
        if existing is not None and _same_export(existing, records, heldout_share, curated_sample):
            log.info("milestone %d is exported already at %s", milestone, existing.uri)
            return existing
        _check_videos(store, milestone, records)
        snapshot_id, curated = _curated_sample(engine, curated_sample)
    finally:
        if owned_engine:
            engine.dispose()
    cut = ExportCut(heldout_share, snapshot_id, curated, base_model or settings.model_source)
    manifest = _write_export(store, milestone, records, cut)
    _remove_unlisted(store, milestone, manifest)
    log.info("exported milestone %d: %d selections to %s", milestone, len(records), manifest.uri)
    return manifest


@dataclass(frozen=True)
class ExportCut:
    """How an export is cut beside its selections: the held-out share and the curated sample."""

    heldout_share: float
    snapshot_id: str | None
    curated: list[SnapshotClip]
    base_model: str


def selections_digest(records: Sequence[SelectionRecord]) -> str:
    """A fingerprint of which selections an export holds: sha256 of "seq request_id chosen" lines."""
    lines = "".join(f"{r.seq} {r.request_id} {r.chosen_index}\n" for r in records)
    return hashlib.sha256(lines.encode()).hexdigest()


def _write_export(
    store: ObjectStore, milestone: int, records: list[SelectionRecord], cut: ExportCut
) -> ExportManifest:
    """Videos and lists first, the manifest last (it commits the export); returns the manifest."""
    prefix = export_prefix(milestone)
    store.remove(DATASETS_BUCKET, f"{prefix}/{MANIFEST_NAME}")  # a stale one must not outlive a rewrite
    manifest = _write_splits(milestone, records, cut, lambda files: _write_split(store, prefix, files))
    store.put_bytes(DATASETS_BUCKET, f"{prefix}/{MANIFEST_NAME}", manifest.to_bytes(), "application/json")
    return manifest


def write_export_folder(
    folder: Path,
    milestone: int,
    records: Sequence[SelectionRecord],
    videos: Mapping[str, bytes],
    *,
    base_model: str,
    heldout_share: float = 0.2,
) -> ExportManifest:
    """Lay ``records`` out in ``folder`` exactly as ``export_milestone`` lays a milestone out in the store.

    Why: the learning benchmark and its CI-sized test make their selections in memory, with no
    database or object store, and must train on the very layout, split and manifest a retrain
    reads. ``videos`` maps each candidate's object key to its mp4 bytes. Returns the manifest,
    which is written last, as in the store.
    """
    folder = Path(folder)
    cut = ExportCut(heldout_share, None, [], base_model)
    manifest = _write_splits(
        milestone, list(records), cut, lambda files: _write_split_locally(folder, files, videos)
    )
    (folder / MANIFEST_NAME).write_bytes(manifest.to_bytes())
    return manifest


def _write_splits(
    milestone: int,
    records: list[SelectionRecord],
    cut: ExportCut,
    write_split: Callable[[SplitFiles], dict[str, str]],
) -> ExportManifest:
    """Split the selections by request id, write each split with ``write_split`` (which returns the sha256
    of every file it wrote, by its path in the export), and return the manifest that commits them."""
    heldout = [r for r in records if is_heldout(r.request_id, cut.heldout_share)]
    train = [r for r in records if not is_heldout(r.request_id, cut.heldout_share)]
    checksums: dict[str, str] = {}
    for split, split_records in zip(SPLITS, (train, heldout), strict=True):
        checksums |= write_split(split_files(split, split_records, cut.curated if split == "train" else []))
    return ExportManifest(
        milestone=milestone,
        selection_seq=(records[0].seq, records[-1].seq),
        selections=len(records),
        selections_digest=selections_digest(records),
        train=len(train),
        heldout=len(heldout),
        heldout_share=cut.heldout_share,
        split_seed=SPLIT_SEED,
        snapshot_id=cut.snapshot_id,
        curated_sample=len(cut.curated),
        base_model=cut.base_model,
        files=dict(sorted(checksums.items())),
        uri=export_uri(milestone),
    )


def _remove_unlisted(store: ObjectStore, milestone: int, manifest: ExportManifest) -> None:
    """Remove what an earlier, different export left under the prefix (the manifest lists the rest)."""
    prefix = export_prefix(milestone) + "/"
    keep = {prefix + path for path in manifest.files} | {prefix + MANIFEST_NAME}
    for obj in store.list(DATASETS_BUCKET, prefix):
        if obj.key not in keep:
            store.remove(DATASETS_BUCKET, obj.key)


def _existing_manifest(store: ObjectStore, milestone: int) -> ExportManifest | None:
    key = f"{export_prefix(milestone)}/{MANIFEST_NAME}"
    if not store.exists(DATASETS_BUCKET, key):
        return None
    return ExportManifest.from_bytes(store.get_bytes(DATASETS_BUCKET, key))


def _same_export(
    manifest: ExportManifest, records: list[SelectionRecord], heldout_share: float, curated_sample: int
) -> bool:
    """Whether the export found holds these selections, cut this way.

    Another cut is refused: a training run may point at the export. Other selections (rows deleted
    since, or another database writing to the same store, as test databases do) are the database's
    truth, so the export is rewritten.
    """
    asked = (heldout_share, SPLIT_SEED, curated_sample)
    found = (manifest.heldout_share, manifest.split_seed, manifest.curated_sample)
    if asked != found:
        raise ExportMismatch(
            f"milestone {manifest.milestone} is exported at {manifest.uri} with (heldout_share, split_seed,"
            f" curated_sample) = {found}, not {asked}; an export is never cut again, since training runs"
            " point at it"
        )
    if manifest.selections_digest == selections_digest(records):
        return True
    log.warning(
        "the export at %s holds other selections than milestone %d now; rewriting it",
        manifest.uri,
        manifest.milestone,
    )
    return False


def _check_videos(store: ObjectStore, milestone: int, records: list[SelectionRecord]) -> None:
    """Fail, naming the object, unless every candidate video of the selections exists."""
    for record in records:
        for candidate in record.candidates:
            if not store.exists(VIDEOS_BUCKET, candidate.object_key):
                raise MissingCandidateVideo(
                    f"milestone {milestone}: candidate {candidate.index} of request {record.request_id}"
                    f" has no video at s3://{VIDEOS_BUCKET}/{candidate.object_key}"
                )


def _curated_sample(engine: Engine, count: int) -> tuple[str | None, list[SnapshotClip]]:
    """The latest snapshot's id and ``count`` clips of its train split, drawn with the split seed."""
    latest = latest_snapshot_stats(engine)
    snapshot_id = latest["snapshot_id"] if latest else None
    if count == 0:
        return snapshot_id, []
    if snapshot_id is None:
        raise ExportError(f"a curated sample of {count} clips was asked for, but no snapshot is published")
    clips = snapshot_clips(engine, snapshot_id, "train")
    if count > len(clips):
        raise ExportError(f"snapshot {snapshot_id} has {len(clips)} train clips; cannot sample {count}")
    chosen = random.Random(SPLIT_SEED).sample(range(len(clips)), count)
    return snapshot_id, [clips[i] for i in sorted(chosen)]


# ---- a split's files ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """A caption on one line: finetrainers reads prompt.txt line by line."""
    return " ".join(text.split())


def _candidate_path(record: SelectionRecord, candidate: Candidate) -> str:
    return f"{VIDEOS_FOLDER}/{record.request_id}_{candidate.index}.mp4"


def _curated_path(clip: SnapshotClip) -> str:
    name = f"curated_{clip.source}_{clip.clip_id}"
    return f"{VIDEOS_FOLDER}/{_UNSAFE_NAME.sub('_', name)}.mp4"


def _clip_json(record: SelectionRecord, candidate: Candidate) -> dict[str, object]:
    return {
        "video": _candidate_path(record, candidate),
        "variation_prompt": candidate.variation_prompt,
        "seed": candidate.seed,
        "index": candidate.index,
    }


def _pair_lines(record: SelectionRecord) -> list[str]:
    """One JSON line per loser of the selection, beside its winner."""
    common = {"request_id": str(record.request_id), "prompt": record.prompt, "tenant": record.tenant}
    winner = _clip_json(record, record.winner)
    return [
        json.dumps({**common, "winner": winner, "loser": _clip_json(record, loser)}, sort_keys=True)
        for loser in record.losers
    ]


def split_files(
    split: Split, records: Sequence[SelectionRecord], curated: Sequence[SnapshotClip]
) -> SplitFiles:
    """The four files of a split: winners' captions and videos (then the curated clips), pairs, videos."""
    captions = [_one_line(r.winner.variation_prompt) for r in records]
    paths = [_candidate_path(r, r.winner) for r in records]
    videos = [
        VideoCopy(VIDEOS_BUCKET, c.object_key, f"{split}/{_candidate_path(r, c)}")
        for r in records
        for c in r.candidates
    ]
    for clip in curated:
        path = _curated_path(clip)
        captions.append(_one_line(clip.caption))
        paths.append(path)
        videos.append(VideoCopy(DATASETS_BUCKET, clip.object_key, f"{split}/{path}"))
    pairs = [line for record in records for line in _pair_lines(record)]
    lists = {
        f"{split}/{PROMPTS_NAME}": _lines(captions),
        f"{split}/{VIDEOS_NAME}": _lines(paths),
        f"{split}/{PAIRS_NAME}": _lines(pairs),
    }
    return SplitFiles(lists, videos)


def _lines(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def _write_split(store: ObjectStore, prefix: str, files: SplitFiles) -> dict[str, str]:
    """Copy the split's videos and write its lists; returns each file's sha256 by its path in the export."""

    def copy(video: VideoCopy) -> tuple[str, str]:
        data = store.get_bytes(video.bucket, video.key)
        store.put_bytes(DATASETS_BUCKET, f"{prefix}/{video.path}", data, content_type="video/mp4")
        return video.path, hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(_COPY_THREADS) as pool:
        checksums = dict(pool.map(copy, files.videos))
    for path, data in files.lists.items():
        store.put_bytes(DATASETS_BUCKET, f"{prefix}/{path}", data, content_type="text/plain; charset=utf-8")
        checksums[path] = hashlib.sha256(data).hexdigest()
    return checksums


def _write_split_locally(folder: Path, files: SplitFiles, videos: Mapping[str, bytes]) -> dict[str, str]:
    """Write the split's videos (from ``videos``, by object key) and lists under ``folder``; their sha256."""
    contents = {video.path: videos[video.key] for video in files.videos} | files.lists
    for path, data in contents.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return {path: hashlib.sha256(data).hexdigest() for path, data in contents.items()}
