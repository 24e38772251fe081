"""The Great Expectations gate passes a good curated table and names every reason it fails a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etl.config import GateConfig, SplitConfig
from etl.quality_gate import GateResult, failure_summary, validate_curated, write_report
from etl.split import assign_splits

SPLIT = SplitConfig()
GATE = GateConfig(max_corrupt_share=0.1, min_clips=20)
GOOD_STATS = {"corrupt": 1, "attempted": 100}


def curated_table(sources: int = 50) -> pd.DataFrame:
    """A curated table as the pipeline writes it: two clips per source video, split without leakage."""
    rows = []
    for source in range(sources):
        source_id = f"src{source:08d}"
        for clip in range(2):
            rows.append(
                {
                    "video": f"{source_id}_{clip}.mp4",
                    "source_video_id": source_id,
                    "caption": f"A Nike runner, take {source}-{clip}.",
                    "caption_norm": f"a nike runner take {source} {clip}",
                    "tags": np.array(["brand:nike", "activity:running"], dtype=object),
                    "aesthetic": 5.5,
                    "motion": 1.5,
                    "temporal_consistency": 0.97,
                    "camera_motion": "static" if clip else None,
                    "frames": np.int32(120),
                    "fps": 24.0,
                    "seconds": 5.0,
                    "part": f"OpenVid_part{source % 3}",
                    "video_path": f"OpenVid_part{source % 3}/{source_id}_{clip}.mp4",
                }
            )
    return assign_splits(pd.DataFrame(rows), SPLIT)


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return curated_table()


def test_passes_on_good_data(good: pd.DataFrame, tmp_path: Path) -> None:
    result = validate_curated(good, GOOD_STATS, GATE, SPLIT)
    assert result.success, result.failures
    assert result.failures == []
    assert failure_summary(result.failures) == "quality gate passed"
    path = write_report(result, tmp_path / "reports" / "gate.json")
    stored = json.loads(path.read_text())
    assert stored["success"] is True
    assert stored["great_expectations"]["success"] is True
    assert {check["check"] for check in stored["checks"]} >= {"corrupt_share", "split_overlap_zero"}


def failing(df: pd.DataFrame, stats: dict[str, object] = GOOD_STATS) -> GateResult:
    result = validate_curated(df, stats, GATE, SPLIT)
    assert not result.success
    assert result.failures
    json.dumps(result.report)  # the report stays storable when the gate fails
    return result


def test_fails_on_missing_column(good: pd.DataFrame) -> None:
    result = failing(good.drop(columns=["fps"]))
    assert result.failures == ["required column 'fps' is missing"]


def test_fails_when_corrupt_share_above_threshold(good: pd.DataFrame) -> None:
    result = failing(good, {"corrupt": 15, "attempted": 100})
    assert result.failures == [
        "corrupt share 0.15 (15/100 clips) above 0.10: 15 clips did not decode (see the extraction report)"
    ]


def test_fails_when_a_split_share_is_off(good: pd.DataFrame) -> None:
    skewed = good.copy()
    skewed.loc[skewed["split"] == "train", "split"] = "val"
    result = failing(skewed)
    val_share = (skewed["split"] == "val").mean()
    assert f"split 'val' share {val_share:.2f} outside 0.15±0.05" in result.failures
    assert "split 'train' share 0.00 outside 0.70±0.05" in result.failures


def test_fails_on_overlap_between_splits(good: pd.DataFrame) -> None:
    leaky = good.copy()
    # Move one clip of a two-clip source to another split: the shares barely move, the leak must show.
    first_train = leaky.index[leaky["split"] == "train"][0]
    leaky.loc[first_train, "split"] = "test"
    result = failing(leaky)
    assert result.failures == ["split overlap: 1 source_video_id values shared by train/test"]
    overlap = next(check for check in result.report["checks"] if check["check"] == "split_overlap_zero")
    assert overlap["observed"]["source_video_id"]["train/test"] == 1


def test_fails_with_reasons_on_bad_values(good: pd.DataFrame) -> None:
    bad = good.copy()
    bad.loc[0, "fps"] = 0.0
    bad.loc[1, "temporal_consistency"] = 1.5
    bad.loc[2, "video"] = bad.loc[3, "video"]
    bad.loc[4, "part"] = None
    bad.loc[5, "split"] = "dev"
    result = failing(bad)
    text = "\n".join(result.failures)
    expected = [
        "'fps': 1 values outside (0, inf)",
        "'temporal_consistency': 1 values outside [0, 1]",
        "'video': 2 duplicate values",
        "'part': 1 null values",
        "'split': 1 values outside",
    ]
    assert [fragment for fragment in expected if fragment not in text] == [], text


def test_fails_on_too_few_clips_and_missing_source_columns(good: pd.DataFrame) -> None:
    result = failing(good.iloc[:10], {**GOOD_STATS, "missing_columns": ["seconds"]})
    assert "10 clips, fewer than min_clips 20" in result.failures
    assert "source CSV lacks columns ['seconds']" in result.failures


def test_names_the_part_behind_the_corrupt_share(good: pd.DataFrame) -> None:
    problems = {
        "OpenVid_part2": {
            "status": "corrupt",
            "reason": "part directory unreadable: no end record",
            "clips": 11,
        }
    }
    result = failing(good, {"corrupt": 13, "attempted": 100, "part_problems": problems})
    assert result.failures == [
        "corrupt share 0.13 (13/100 clips) above 0.10: zip part OpenVid_part2: part directory unreadable: "
        "no end record (11 clips); 2 clips did not decode (see the extraction report)"
    ]
    corrupt = next(check for check in result.report["checks"] if check["check"] == "corrupt_share")
    assert corrupt["causes"][0].startswith("zip part OpenVid_part2")


def test_fails_when_too_many_selected_clips_are_missing(good: pd.DataFrame) -> None:
    problems = {
        "OpenVid_part9": {"status": "missing", "reason": "zip part 'OpenVid_part9' not found", "clips": 4}
    }
    result = failing(good, {"corrupt": 0, "attempted": 90, "missing": 10, "part_problems": problems})
    assert result.failures == [
        "missing share 0.10 (10/100 clips) above 0.05: zip part OpenVid_part9: zip part 'OpenVid_part9' not "
        "found (4 clips); 6 clips not members of any part they are mapped to"
    ]
    # Under the threshold the check passes, and its report still says what was missing and why.
    passed = validate_curated(good, {"corrupt": 0, "attempted": 99, "missing": 1}, GATE, SPLIT)
    missing = next(check for check in passed.report["checks"] if check["check"] == "clips_missing")
    assert passed.success and missing["observed"] == 0.01
    assert missing["causes"] == ["1 clips not members of any part they are mapped to"]


def test_fails_on_control_characters_in_text(good: pd.DataFrame) -> None:
    bad = good.copy()
    bad.loc[3, "caption"] = "a caption with a \x00 in it"
    result = failing(bad)
    assert result.failures == [
        f"control characters in column 'caption' of 1 clips, e.g. {[bad.loc[3, 'video']]!r}"
    ]
