"""The curation job on a small OpenVid-like CSV: every messy row is accounted for, none crashes the job."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession

from spark_jobs.curate_clips import OUTPUT_COLUMNS, CurationReport, curate, main
from spark_jobs.filter_config import FilterConfig

HEADER = [
    "video", "caption", "aesthetic score", "motion score", "temporal consistency score", "camera motion",
    "frame", "fps", "seconds",
]  # fmt: skip
GOOD = {"aesthetic": "5.5", "motion": "2.0", "temporal": "0.95", "camera": "static", "frame": "120",
        "fps": "24", "seconds": "5.0"}  # fmt: skip


def row(video: str, caption: str, **overrides: str) -> list[str]:
    values = {**GOOD, **overrides}
    return [video, caption, values["aesthetic"], values["motion"], values["temporal"], values["camera"],
            values["frame"], values["fps"], values["seconds"]]  # fmt: skip


ROWS = [
    row("aaaaaaaaaaa_0.mp4", "A runner in Nike shoes jogs along the beach."),
    row("aaaaaaaaaaa_0.mp4", "a runner in nike shoes jogs along the beach"),  # duplicate: case, punctuation
    row("aaaaaaaaaaa_0.mp4", "  A  runner in NIKE shoes,  jogs along the beach!! "),  # duplicate: whitespace
    row("aaaaaaaaaaa_1.mp4", "Close-up of Adidas sneakers on a basketball court."),
    row("bbbbbbbbbbb_0.mp4", "A woman doing yoga in a park wearing Lululemon leggings"),
    row("bbbbbbbbbbb_0.mp4", "Another caption about gym fitness"),  # duplicate: same video, other caption
    row("ccccccccccc_0.mp4", "Cute cat sleeping on a sofa"),  # no brand keyword
    row("ccccccccccc_1.mp4", "Nike running shoes", seconds="1.0"),  # too short
    row("ddddddddddd_0.mp4", "Puma football match in a stadium", seconds="120"),  # too long
    row("ddddddddddd_1.mp4", "Reebok workout", aesthetic="3.0"),  # low aesthetic
    row("eeeeeeeeeee_0.mp4", "Vans skateboard trick", motion="0.1"),  # low motion
    row("eeeeeeeeeee_1.mp4", "Converse sneakers", temporal="0.5"),  # low temporal consistency
    row("fffffffffff_0.mp4", ""),  # missing caption
    row("fffffffffff_1.mp4", "Nike ad", seconds="n/a"),  # unparsable
    row("fffffffffff_2.mp4", "Nike ad", fps="-3.2"),  # negative
    row("fffffffffff_3.mp4", "Nike ad", frame="abc"),  # unparsable
    row("", "Nike ad without a video name"),  # missing video
    row("ggggggggggg_0.mp4", "Caravans parked near the sea"),  # "vans" only inside a word
    row("hhhhhhhhhhh_0.mp4", "Asics running shoes on a track"),  # selected but in no zip part
    row("iiiiiiiiiii_0.mp4", "Nike ad", frame="0"),  # zero frames
    row("jjjjjjjjjjj_0.mp4", 'She said "Just do it", wearing a Nike hoodie'),  # quotes and commas
]
MAPPINGS = {
    "OpenVid_part1": ["aaaaaaaaaaa_0.mp4", "aaaaaaaaaaa_1.mp4", "zzzzzzzzzzz_0.mp4"],
    "OpenVid_part2": [
        "bbbbbbbbbbb_0.mp4",
        "jjjjjjjjjjj_0.mp4",
        "aaaaaaaaaaa_1.mp4",
    ],  # twice: the first part wins
}


def write_csv(path: Path, header: list[str], rows: list[list[str]] | list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("openvid")
    write_csv(root / "OpenVid-1M.csv", HEADER, ROWS)
    for part, videos in MAPPINGS.items():
        pairs = [(video, f"{part.split('_')[1]}/{video}") for video in videos]
        write_csv(root / "video_mappings" / f"{part}.csv", ["video", "video_path"], pairs)
    return root


@pytest.fixture(scope="module")
def curated(spark: SparkSession, mirror: Path) -> tuple[DataFrame, pd.DataFrame, CurationReport]:
    mappings = sorted(str(p) for p in (mirror / "video_mappings").glob("*.csv"))
    df, report = curate(spark, str(mirror / "OpenVid-1M.csv"), mappings, FilterConfig())
    return df, df.toPandas().set_index("video"), report


def test_bad_rows_are_counted_by_reason(curated: tuple[DataFrame, pd.DataFrame, CurationReport]) -> None:
    _, _, report = curated
    assert report.rows_read == len(ROWS)
    assert report.bad_rows == {
        "missing_field": 2,
        "unparsable_number": 2,
        "negative_number": 1,
        "zero_frames_or_fps": 1,
    }
    assert report.missing_columns == []


def test_duplicates_by_case_whitespace_punctuation_are_dropped(
    curated: tuple[DataFrame, pd.DataFrame, CurationReport],
) -> None:
    _, clips, report = curated
    assert report.duplicates_dropped == {"same_video_same_caption": 2, "same_video_other_caption": 1}
    assert clips.index.is_unique
    assert clips.loc["aaaaaaaaaaa_0.mp4", "caption_norm"] == "a runner in nike shoes jogs along the beach"
    assert "  " not in clips.loc["aaaaaaaaaaa_0.mp4", "caption"]


def test_filters_report_one_reason_per_row(curated: tuple[DataFrame, pd.DataFrame, CurationReport]) -> None:
    _, clips, report = curated
    assert report.filtered_out == {
        "no_brand_keyword": 2,
        "too_short": 1,
        "too_long": 1,
        "low_aesthetic": 1,
        "low_motion": 1,
        "low_temporal_consistency": 1,
    }
    assert "ggggggggggg_0.mp4" not in clips.index  # "caravans" does not match "vans"
    assert report.unmapped == 1 and "hhhhhhhhhhh_0.mp4" not in clips.index
    assert report.selected == len(clips) == 4
    dropped = (
        report.bad_rows_total + sum(report.duplicates_dropped.values()) + sum(report.filtered_out.values())
    )
    assert dropped + report.unmapped + report.selected == report.rows_read


def test_output_columns_tags_and_mapping(curated: tuple[DataFrame, pd.DataFrame, CurationReport]) -> None:
    df, clips, _ = curated
    assert tuple(df.columns) == OUTPUT_COLUMNS
    types = dict(df.dtypes)
    assert types["tags"] == "array<string>" and types["frames"] == "int" and types["seconds"] == "double"
    assert list(clips.loc["aaaaaaaaaaa_0.mp4", "tags"]) == ["brand:nike", "setting:beach"]
    assert set(clips.loc["aaaaaaaaaaa_1.mp4", "tags"]) >= {
        "brand:adidas",
        "activity:basketball",
        "setting:court",
    }
    assert clips.loc["aaaaaaaaaaa_1.mp4", "source_video_id"] == "aaaaaaaaaaa"
    assert clips.loc["aaaaaaaaaaa_1.mp4", ["part", "video_path"]].tolist() == [
        "OpenVid_part1",
        "part1/aaaaaaaaaaa_1.mp4",
    ]
    assert clips.loc["jjjjjjjjjjj_0.mp4", "caption"] == 'She said "Just do it", wearing a Nike hoodie'
    assert clips.loc["jjjjjjjjjjj_0.mp4", "part"] == "OpenVid_part2"
    assert clips.loc["bbbbbbbbbbb_0.mp4", "fps"] == 24.0


def test_report_is_json_serialisable(curated: tuple[DataFrame, pd.DataFrame, CurationReport]) -> None:
    _, _, report = curated
    data = json.loads(json.dumps(report.to_dict()))
    assert data["bad_rows_total"] == 6 and data["selected"] == 4


def test_missing_column_counts_rows_as_bad_instead_of_crashing(spark: SparkSession, tmp_path: Path) -> None:
    broken = [r[:-1] for r in ROWS[:5]]
    csv_path = write_csv(tmp_path / "broken.csv", HEADER[:-1], broken)
    df, report = curate(spark, str(csv_path), [], FilterConfig())
    assert report.missing_columns == ["seconds"]
    assert report.bad_rows == {"missing_field": 5}
    assert report.selected == 0 and df.count() == 0


def test_main_writes_parquet_and_report(mirror: Path, tmp_path: Path, spark: SparkSession) -> None:
    out, report_path = tmp_path / "curated.parquet", tmp_path / "reports" / "curation.json"
    config = tmp_path / "filters.json"
    config.write_text(json.dumps({"brand_keywords": ["nike"], "min_seconds": 0.5}))
    argv = ["--openvid-csv", str(mirror / "OpenVid-1M.csv"), "--mappings", str(mirror / "video_mappings"),
            "--out", str(out), "--report", str(report_path), "--config", str(config)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    written = pd.read_parquet(out)
    assert sorted(written["video"]) == ["aaaaaaaaaaa_0.mp4", "jjjjjjjjjjj_0.mp4"]
    assert report["selected"] == 2 and report["filtered_out"]["no_brand_keyword"] == 9
    assert "too_short" not in report["filtered_out"]  # ccccccccccc_1 (1 s) is unmapped now instead


HOSTILE = [
    row("kkkkkkkkkkk_0.mp4", 'A Nike runner says "go",\nthen jogs\r\nalong the beach'),  # quoted line breaks
    row(
        "kkkkkkkkkkk_1.mp4", 'Adidas\x00sneakers, "new"\x1bon a court'
    ),  # control characters in a quoted field
    row("kkkkkkkkkkk_2.mp4", "Ni\u200dke hoodie in the gym \u2764\ufe0f"),  # format characters: removed
    row("lllllllllll_0.mp4", "Nike ad", seconds="inf"),
    row("lllllllllll_1.mp4", "Nike ad", fps="-inf"),  # non-finite, not "negative"
    row("lllllllllll_2.mp4", "Nike ad", aesthetic="1e400"),  # too large for a double
    row("lllllllllll_3.mp4", "Nike ad", motion="NaN"),
    row("lllllllllll_4\x00.mp4", "Nike ad"),  # a NUL in a clip's name: refused, not cleaned
    row("mmmmmmmmmmm_0.mp4", "\u200b\u2060"),  # only invisible characters: a missing caption
]


def test_rfc4180_csv_with_bom_crlf_and_hostile_text(spark: SparkSession, tmp_path: Path) -> None:
    path = tmp_path / "hostile.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as handle:  # BOM; csv writes CRLF line ends
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(HOSTILE)
    mappings = tmp_path / "video_mappings"
    videos = ["kkkkkkkkkkk_0.mp4", "kkkkkkkkkkk_1.mp4", "kkkkkkkkkkk_2.mp4"]
    write_csv(mappings / "OpenVid_part3.csv", ["video", "video_path"], [(v, f"3/{v}") for v in videos])
    write_csv(mappings / "OpenVid_part1.csv", ["video", "video_path"], [(videos[0], f"1/{videos[0]}")])

    df, report = curate(spark, str(path), [str(mappings / "*.csv")], FilterConfig())
    clips = df.toPandas().set_index("video")
    assert report.rows_read == len(HOSTILE) and report.missing_columns == []
    assert report.bad_rows == {"non_finite_number": 4, "control_character_in_video": 1, "missing_field": 1}
    assert report.captions_with_control_characters == 1
    assert sorted(clips.index) == videos
    assert clips.loc[videos[0], "caption"] == 'A Nike runner says "go", then jogs along the beach'
    assert clips.loc[videos[1], "caption"] == 'Adidas sneakers, "new" on a court'
    assert clips.loc[videos[2], "caption"] == "Nike hoodie in the gym \u2764"
    assert clips.loc[videos[2], "caption_norm"] == "nike hoodie in the gym"
    assert "brand:nike" in list(clips.loc[videos[2], "tags"])
    # Listed in two parts: both kept, in part order, and counted; the others have one location.
    assert report.conflicting_mappings == 1
    assert [dict(loc) for loc in clips.loc[videos[0], "locations"]] == [
        {"part": "OpenVid_part1", "video_path": f"1/{videos[0]}"},
        {"part": "OpenVid_part3", "video_path": f"3/{videos[0]}"},
    ]
    assert clips.loc[videos[0], "part"] == "OpenVid_part1" and len(clips.loc[videos[1], "locations"]) == 1
