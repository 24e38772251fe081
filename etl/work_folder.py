"""What each step of ``nightly_etl`` hands to the next, under ``<state_dir>/etl/<snapshot_id>/``.

Steps run as separate Airflow tasks, so they pass data through files. Each step's outputs are
described here once, as a data file (or folder) and a JSON report beside it; the step writes them and
the steps after it read them through the same description, so no file name is repeated across steps.

    raw/<source>/..., fetch.json                     fetch_metadata   metadata files as published
    curated.parquet, curation_report.json            curate_clips     Spark: clean, dedupe, filter, tag
    prompts.parquet, prompt_report.json              filter_prompts   Spark: the VidProM prompt pool
    media/, extracted.parquet, extraction_stats.json extract_clips    ranged zip reads, decode, resize
    images/*.png, images.json                        resize_images    AdImageNet ads at 224x224
    dataset.parquet                                  assign_splits    leakage-free 70/15/15
    validation.json                                  validate         Great Expectations gate
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepOutput:
    """One step's hand-off: its data (a file or a folder) and the JSON report of what it did."""

    data: Path
    report: Path

    def write_report(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Store the summary (it is also the task's XCom) and return it."""
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
        return summary

    def read_report(self) -> dict[str, Any]:
        return json.loads(self.report.read_text())


@dataclass(frozen=True)
class WorkFolder:
    """One snapshot's work folder; a step re-run overwrites its own outputs."""

    root: Path

    @property
    def metadata(self) -> StepOutput:
        """fetch_metadata: every source's metadata files, under ``raw/<source>/``."""
        return StepOutput(self.root / "raw", self.root / "fetch.json")

    def raw(self, source: str) -> Path:
        """Where one source's metadata files were downloaded, in the source's own layout."""
        return self.metadata.data / source

    @property
    def curated(self) -> StepOutput:
        """curate_clips: the selected clips' metadata and where every input row went."""
        return StepOutput(self.root / "curated.parquet", self.root / "curation_report.json")

    @property
    def prompts(self) -> StepOutput:
        """filter_prompts: the prompt pool and where every input row went."""
        return StepOutput(self.root / "prompts.parquet", self.root / "prompt_report.json")

    @property
    def media(self) -> Path:
        """extract_clips: the resized clips (``clips/``) and the quarantined ones (``quarantine/``)."""
        return self.root / "media"

    @property
    def extracted(self) -> StepOutput:
        """extract_clips: one row per selected clip (status, probe of the resized file) and the counts."""
        return StepOutput(self.root / "extracted.parquet", self.root / "extraction_stats.json")

    @property
    def images(self) -> StepOutput:
        """resize_images: the square ad images (``images/*.png``) and their counts."""
        return StepOutput(self.root / "images", self.root / "images.json")

    @property
    def dataset(self) -> Path:
        """assign_splits: the extracted clips with their split; what the gate checks and the load ships."""
        return self.root / "dataset.parquet"

    @property
    def validation(self) -> Path:
        """validate: the quality gate's report, whether it passed or not."""
        return self.root / "validation.json"

    def gate_passed(self) -> bool:
        """Whether the gate's report says the dataset passed (a missing report raises)."""
        return bool(json.loads(self.validation.read_text()).get("success"))
