"""The layout of a milestone's training-set export: where it lives, its files, and its manifest.

Why its own module: the export writes this layout (``training.export``) and the trainer and the
evaluation read it (``training.dataset``), often on another machine; the names and the manifest's
fields live in one place so the two sides cannot drift. The layout is finetrainers' two-file dataset
(``prompt.txt`` + ``videos.txt``, one line per clip, paths relative to the split's folder) plus
``pairs.jsonl`` for the preference objective, once per split::

    exports/milestone-00001/
        manifest.json
        train/prompt.txt  train/videos.txt  train/pairs.jsonl  train/videos/<request_id>_<index>.mp4
        heldout/...       (the same four for the held-out selections)
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adfame.contracts import DATASETS_BUCKET

FORMAT = 1
MANIFEST_NAME = "manifest.json"
PROMPTS_NAME = "prompt.txt"
VIDEOS_NAME = "videos.txt"
PAIRS_NAME = "pairs.jsonl"
VIDEOS_FOLDER = "videos"
Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")


def export_prefix(milestone: int) -> str:
    """The export's key prefix in ``adfame-datasets`` (no trailing slash)."""
    if milestone < 1:
        raise ValueError(f"milestones start at 1, got {milestone}")
    return f"exports/milestone-{milestone:05d}"


def export_uri(milestone: int) -> str:
    """``s3://adfame-datasets/exports/milestone-{N:05d}/``: where milestone N's export lives."""
    return f"s3://{DATASETS_BUCKET}/{export_prefix(milestone)}/"


class ExportManifest(BaseModel):
    """What an export holds and how it was cut: enough to trace it back and to verify every file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = FORMAT
    milestone: int = Field(ge=1)
    selection_seq: tuple[int, int] = Field(description="seq of the first and the last selection exported")
    selections: int = Field(ge=1)
    selections_digest: str | None = Field(
        None,
        description="sha256 of the selections' 'seq request_id chosen' lines (training.export always"
        " writes it; a manifest without it never counts as holding the database's selections)",
    )
    train: int = Field(ge=0, description="selections in the train split")
    heldout: int = Field(ge=0, description="selections kept aside for evaluation")
    heldout_share: float = Field(ge=0, le=1)
    split_seed: int
    snapshot_id: str | None = Field(description="the latest curated snapshot when exported; None before any")
    curated_sample: int = Field(ge=0, description="curated train clips added to train/prompt.txt")
    base_model: str
    files: dict[str, str] = Field(description="path inside the export -> sha256 of its bytes")
    uri: str

    def to_bytes(self) -> bytes:
        """The manifest file: sorted keys, fixed indentation, so an export always writes the same bytes."""
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ExportManifest:
        return cls.model_validate_json(data)
