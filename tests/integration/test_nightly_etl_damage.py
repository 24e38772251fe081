"""nightly_etl on hostile real-world data: one damaged mirror per kind of damage (``devkit.mirror_damage``),
each run through the pipeline's step functions as the DAG's tasks run them (no DAG runs: the one run end
to end is in test_nightly_etl.py). Each run either loads every good record and counts every bad one by
reason, or fails before publishing, naming the cause; never a half-published snapshot."""

from __future__ import annotations

import csv
import math
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from adfame import db
from adfame.contracts import DATASETS_BUCKET
from adfame.repositories import datasets
from adfame.storage import ObjectStore
from devkit.mirror import ADIMAGENET_REPO, OPENVID_REPO, VIDPROM_REPO, MirrorSummary, generate_mirror
from devkit.mirror_damage import Damage
from etl import pipeline
from etl.config import EtlConfig, MediaConfig, SourceConfig
from etl.errors import GateFailed, UnpublishableClips
from etl.load import snapshot_prefix
from etl.work_folder import WorkFolder

pytestmark = pytest.mark.integration
SMALL = {"rows": 240, "clips": 24, "parts": 3, "corrupt": 0, "image_count": 1, "prompt_rows": 120}
STEPS_BEFORE_THE_GATE = (
    pipeline.fetch_metadata,
    pipeline.curate_clips,
    pipeline.filter_prompts,
    pipeline.extract_clips,
    pipeline.resize_images,
    pipeline.assign_splits,
)
NUMERIC = ("aesthetic score", "motion score", "temporal consistency score", "frame", "fps", "seconds")
# Invisible characters an independent look-alike key drops (the pipeline's own cleaning is not reused).
VARIATION_SELECTORS = {*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)}


@dataclass(frozen=True)
class DamagedRun:
    """A damaged mirror and a run over it whose steps up to the split have run."""

    mirror: MirrorSummary
    run: pipeline.RunContext


def new_run(root: Path, work: Path) -> pipeline.RunContext:
    sources = SourceConfig(
        openvid=f"file://{root / OPENVID_REPO}",
        vidprom=f"file://{root / VIDPROM_REPO}",
        adimagenet=f"file://{root / ADIMAGENET_REPO}",
    )
    config = EtlConfig(sources=sources, media=MediaConfig(video_height=32, workers=2))
    return pipeline.RunContext(f"it-dmg-{uuid.uuid4().hex[:8]}", WorkFolder(work), config)


@pytest.fixture(scope="module")
def damaged(spark, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Damage], DamagedRun]:
    """Per damage, once per module: the mirror, and its run up to the split."""
    made: dict[Damage, DamagedRun] = {}

    def make(damage: Damage) -> DamagedRun:
        if damage not in made:
            root = tmp_path_factory.mktemp(f"mirror-{damage}")
            mirror = generate_mirror(root / "mirror", **SMALL, damages=[damage])
            run = new_run(root / "mirror", root / "work")
            for step in STEPS_BEFORE_THE_GATE:
                step(run)
            made[damage] = DamagedRun(mirror, run)
        return made[damage]

    return make


def loaded_clips(snapshot_id: str) -> pd.DataFrame:
    with db.engine().connect() as conn:
        rows = conn.execute(
            text(
                "select clip_id, caption, normalized_caption, tags, split from dataset_clips "
                "where snapshot_id = :s"
            ),
            {"s": snapshot_id},
        ).mappings()
        return pd.DataFrame(list(rows)).set_index("clip_id")


def snapshot_keys(snapshot_id: str) -> list[str]:
    return [o.key for o in ObjectStore().list(DATASETS_BUCKET, snapshot_prefix(snapshot_id) + "/")]


def lookalike_key(caption: str) -> str:
    """What a reader sees: no invisible characters, no case, width or punctuation, no spacing."""
    visible = "".join(
        ch
        for ch in caption
        if unicodedata.category(ch) not in ("Cc", "Cf") and ord(ch) not in VARIATION_SELECTORS
    )
    return "".join(ch for ch in unicodedata.normalize("NFKC", visible).casefold() if ch.isalnum())


def assert_no_lookalikes_across_splits(clips: pd.DataFrame) -> None:
    splits = clips.groupby(clips["caption"].map(lookalike_key))["split"].nunique()
    assert splits.max() == 1, splits[splits > 1]


def publish(case: DamagedRun) -> pd.DataFrame:
    """Gate and load the run; the loaded rows, after checking the snapshot is whole and leak-free."""
    pipeline.validate(case.run)
    result = pipeline.load_snapshot(case.run)
    assert result["already_loaded"] is False
    clips = loaded_clips(case.run.snapshot_id)
    # Every good record is loaded: exactly the clips that pass the filters (none is corrupt here).
    assert sorted(clips.index) == sorted(case.mirror.brand_clips)
    keys = snapshot_keys(case.run.snapshot_id)
    assert f"{snapshot_prefix(case.run.snapshot_id)}/manifest.json" in keys
    assert sum(key.endswith(".mp4") for key in keys) == len(clips)
    assert_no_lookalikes_across_splits(clips)
    return clips


def curation(case: DamagedRun) -> dict[str, Any]:
    return case.run.files.curated.read_report()


def reference_bad_rows(mirror: MirrorSummary) -> int:
    """Rows of the metadata CSV a curation must count as bad, as Python's csv module (RFC 4180) reads
    the file: a blank video or caption, a number that is not finite and non-negative, frames that are
    not a positive integer, zero fps, a control character in the video name."""

    def bad(row: dict[str, str]) -> bool:
        if not row["video"].strip() or not row["caption"].strip() or "\x00" in row["video"]:
            return True
        try:
            numbers = {column: float(row[column]) for column in NUMERIC}
        except ValueError:
            return True
        if any(not math.isfinite(value) or value < 0 for value in numbers.values()):
            return True
        return numbers["frame"] != int(numbers["frame"]) or 0 in (numbers["frame"], numbers["fps"])

    with mirror.metadata_csv.open(newline="", encoding="utf-8-sig") as handle:
        return sum(bad(row) for row in csv.DictReader(handle))


def test_control_characters_are_cleaned_and_counted(damaged) -> None:
    case = damaged(Damage.CONTROL_CHARS)
    log, report = case.mirror.damage, curation(case)
    assert report["captions_with_control_characters"] == log.control_caption_rows > 0
    assert report["bad_rows"]["control_character_in_video"] == log.nul_video_rows == 2
    assert report["bad_rows_total"] == reference_bad_rows(case.mirror)
    prompts = case.run.files.prompts.read_report()
    assert prompts["prompts_with_control_characters"] == log.control_prompts
    clips = publish(case)
    damaged_captions = clips.loc[log.control_captions, "caption"]
    assert not damaged_captions.str.contains(r"[\x00-\x1f\x7f-\x9f]").any()
    assert not pd.read_parquet(case.run.files.prompts.data)["prompt"].str.contains("\x00").any()


def test_quoted_line_breaks_crlf_and_bom_keep_every_record(damaged) -> None:
    case = damaged(Damage.QUOTED_NEWLINES)
    report = curation(case)
    assert report["rows_read"] == case.mirror.rows  # no record split into fragments
    assert report["bad_rows_total"] == reference_bad_rows(case.mirror)
    assert report["missing_columns"] == []  # the BOM did not rename the first column
    assert case.run.files.prompts.read_report()["rows_read"] == case.mirror.prompt_rows
    clips = publish(case)
    lines = clips.loc[case.mirror.damage.newline_captions, "caption"]
    assert lines.str.contains('reads "').all() and not lines.str.contains("[\r\n]").any()


def test_a_clip_mapped_to_two_parts_is_found_in_the_one_holding_it(damaged) -> None:
    case = damaged(Damage.DUPLICATE_MAPPING)
    conflicts = case.mirror.damage.conflicting_mappings
    assert curation(case)["conflicting_mappings"] == len(conflicts) > 0
    assert curation(case)["conflicting_mapping_parts"] == conflicts  # each clip with both parts named
    extraction = case.run.files.extracted.read_report()
    assert extraction["clips_found_elsewhere"] == len(conflicts)
    assert extraction["clips_missing"] == 0
    dataset = pd.read_parquet(case.run.files.dataset).set_index("video")
    for video, parts in conflicts.items():
        assert dataset.loc[video, "part"] == parts[-1]  # the part that holds it, not the first named
    publish(case)


def test_format_characters_are_removed_and_lookalikes_share_a_split(damaged) -> None:
    case = damaged(Damage.FORMAT_CHARS)
    log = case.mirror.damage
    clips = publish(case)
    for video in log.format_captions:
        caption = clips.loc[video, "caption"]
        assert not any(unicodedata.category(ch) == "Cf" or ord(ch) in VARIATION_SELECTORS for ch in caption)
        assert any(tag.startswith("brand:") for tag in clips.loc[video, "tags"]), clips.loc[video, "tags"]
        assert " \ufe0f" not in clips.loc[video, "normalized_caption"]
    for first, lookalike in log.lookalike_pairs:
        assert clips.loc[first, "normalized_caption"] == clips.loc[lookalike, "normalized_caption"]
        assert clips.loc[first, "split"] == clips.loc[lookalike, "split"]


def test_non_finite_numbers_are_counted_as_what_they_are(damaged) -> None:
    case = damaged(Damage.NON_FINITE)
    report = curation(case)
    assert report["bad_rows"]["non_finite_number"] == case.mirror.damage.non_finite_rows > 0
    assert report["bad_rows_total"] == reference_bad_rows(case.mirror)
    publish(case)


def test_a_truncated_part_fails_the_gate_naming_the_part(damaged) -> None:
    case = damaged(Damage.TRUNCATED_PART)
    part = case.mirror.damage.truncated_part
    held = sum(f"OpenVid_part{case.mirror.clip_parts[video]}" == part for video in case.mirror.brand_clips)
    with pytest.raises(GateFailed, match=rf"zip part {part}: part directory unreadable.*\({held} clips\)"):
        pipeline.validate(case.run)
    with pytest.raises(GateFailed, match="no passing validation report"):
        pipeline.load_snapshot(case.run)
    assert snapshot_keys(case.run.snapshot_id) == []
    assert not datasets.snapshot_exists(db.engine(), case.run.snapshot_id)


def test_a_load_failing_at_commit_leaves_nothing_and_a_rerun_succeeds(damaged, monkeypatch) -> None:
    case = damaged(Damage.NON_FINITE)
    run = replace(case.run, snapshot_id=f"it-dmg-{uuid.uuid4().hex[:8]}")
    pipeline.validate(run)
    publish_rows = datasets.publish_snapshot

    def commit_fails(*args: Any, before_commit: Callable[[], None], **kwargs: Any) -> int:
        def manifest_then_failure() -> None:
            before_commit()  # the manifest is in the store: the worst moment to fail
            raise ConnectionError("the database went away at commit")

        return publish_rows(*args, before_commit=manifest_then_failure, **kwargs)

    monkeypatch.setattr(datasets, "publish_snapshot", commit_fails)
    with pytest.raises(ConnectionError, match="went away"):
        pipeline.load_snapshot(run)
    assert snapshot_keys(run.snapshot_id) == []
    assert not datasets.snapshot_exists(db.engine(), run.snapshot_id)

    monkeypatch.setattr(datasets, "publish_snapshot", publish_rows)
    assert pipeline.load_snapshot(run)["already_loaded"] is False
    assert len(loaded_clips(run.snapshot_id)) == len(case.mirror.brand_clips)
    assert f"{snapshot_prefix(run.snapshot_id)}/manifest.json" in snapshot_keys(run.snapshot_id)


def test_a_value_the_tables_cannot_hold_fails_before_anything_is_written(damaged) -> None:
    case = damaged(Damage.CONTROL_CHARS)
    run = replace(case.run, snapshot_id=f"it-dmg-{uuid.uuid4().hex[:8]}")
    pipeline.validate(run)
    dataset = pd.read_parquet(run.files.dataset)
    video = dataset.loc[0, "video"]
    dataset.loc[0, "caption"] = "a caption with a \x00 that slipped past curation"
    dataset.to_parquet(run.files.dataset, index=False)  # as if curation had let it through
    with pytest.raises(UnpublishableClips) as raised:
        pipeline.load_snapshot(run)
    assert [(p.clip, p.column) for p in raised.value.problems] == [(video, "caption")]
    assert "U+0000" in str(raised.value) and video in str(raised.value)
    assert snapshot_keys(run.snapshot_id) == []
