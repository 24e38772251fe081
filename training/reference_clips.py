"""The real videos a Fréchet distance compares generated ones with: the curated validation clips.

Why its own module: evaluation and (later) monitoring both need "the latest curated snapshot's
validation split, fitted to the size we generate at", and neither should know where snapshots live.
The snapshot is the one ``nightly_etl`` published last (``adfame.repositories.datasets``); its
clips are read from ``adfame-datasets``. A local folder of mp4s can stand in (benchmarks, tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sqlalchemy import Engine

from adfame.contracts import DATASETS_BUCKET
from adfame.repositories import datasets
from adfame.storage import ObjectStore
from inference.video import decode_mp4
from training.video_frames import read_frames

VALIDATION_SPLIT = "val"


class NoReferenceClips(LookupError):
    """There are no clips to compare with; the message is the reason a report gives for skipping."""


@dataclass(frozen=True)
class ReferenceClips:
    """Real clips, each cut to the evaluation's frame count and size; ``source`` says where they came from."""

    source: str
    snapshot_id: str | None
    videos: list[np.ndarray]


def fit_clip(frames: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """The first ``num_frames`` frames resized (antialiased bilinear) to ``height`` x ``width``, uint8."""
    frames = frames[:num_frames]
    if frames.shape[1:3] == (height, width):
        return frames
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = F.interpolate(
        pixels, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def snapshot_validation_clips(
    engine: Engine, store: ObjectStore, *, limit: int, num_frames: int, height: int, width: int
) -> ReferenceClips:
    """Up to ``limit`` validation clips of the latest published snapshot (in clip order).

    Raises ``NoReferenceClips`` when no snapshot was published yet or its validation split is empty.
    """
    latest = datasets.latest_snapshot_stats(engine)
    if latest is None:
        raise NoReferenceClips("no curated snapshot has been published yet (run nightly_etl)")
    snapshot_id = latest["snapshot_id"]
    clips = datasets.snapshot_clips(engine, snapshot_id, VALIDATION_SPLIT)[:limit]
    if not clips:
        raise NoReferenceClips(f"snapshot {snapshot_id} has no {VALIDATION_SPLIT!r} clips")
    videos = [
        fit_clip(decode_mp4(store.get_bytes(DATASETS_BUCKET, clip.object_key)), num_frames, height, width)
        for clip in clips
    ]
    return ReferenceClips(f"snapshot:{snapshot_id}", snapshot_id, videos)


def folder_clips(folder: Path, *, limit: int, num_frames: int, height: int, width: int) -> ReferenceClips:
    """Up to ``limit`` mp4s of a local folder (sorted by name), fitted like snapshot clips."""
    paths = sorted(Path(folder).glob("*.mp4"))[:limit]
    if not paths:
        raise NoReferenceClips(f"no mp4 files in {folder}")
    videos = [fit_clip(read_frames(path), num_frames, height, width) for path in paths]
    return ReferenceClips(f"folder:{folder}", None, videos)
