"""The prompt-pool job on a small VidProM-like CSV: toxic, duplicate and bad rows are counted, not fatal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from devkit.mirror import VIDPROM_COLUMNS
from spark_jobs.filter_prompts import OUTPUT_COLUMNS, filter_prompts, main

CLEAN = ["0.01"] * 6


def row(uuid: str, prompt: str, time: str = "2023-07-01 10:00:00", scores: list[str] = CLEAN) -> list[str]:
    return [uuid, prompt, time, *scores]


ROWS = [
    row("u01", "A sunset over the ocean, in watercolor", time="2023-07-01 09:00:00"),
    row("u02", "a sunset over the ocean in WATERCOLOR!", time="2023-07-02 09:00:00"),  # later duplicate
    row("u03", "A sunset over the ocean in watercolor", scores=["0.5", *CLEAN[1:]]),  # toxic copy: not a dup
    row("u04", "Something hateful", scores=["0.9", *CLEAN[1:]]),  # toxic
    row("u05", "A threat", scores=[*CLEAN[:4], "0.3", CLEAN[5]]),  # one score above the threshold
    row("u06", "Sneakers on a rainy street", scores=["0.2"] * 6),  # at the threshold: kept
    row("u07", "Broken insult score", scores=[*CLEAN[:3], "n/a", *CLEAN[4:]]),  # unparsable
    row("u08", "Negative obscene score", scores=[CLEAN[0], "-0.1", *CLEAN[2:]]),  # negative
    row("u09", ""),  # missing prompt
    row("u10", "Score above one", scores=["1.5", *CLEAN[1:]]),
    row("u11", "!!!"),  # nothing left after normalisation
    row("u12", "A dog surfing a wave", time=""),  # time is optional
]


@pytest.fixture(scope="module")
def vidprom_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vidprom") / "VidProM_unique.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(VIDPROM_COLUMNS)
        writer.writerows(ROWS)
    return path


def test_filter_prompts_counts_every_row(spark: SparkSession, vidprom_csv: Path) -> None:
    df, report = filter_prompts(spark, str(vidprom_csv), max_toxicity=0.2)
    prompts = df.toPandas()
    assert tuple(df.columns) == OUTPUT_COLUMNS
    assert list(prompts["uuid"]) == ["u01", "u06", "u12"]
    assert report.bad_rows == {
        "unparsable_number": 1,
        "negative_number": 1,
        "missing_field": 1,
        "score_above_one": 1,
        "empty_prompt": 1,
    }
    assert (report.toxic_dropped, report.duplicates_dropped, report.selected) == (3, 1, 3)
    assert report.rows_read == len(ROWS) == report.bad_rows_total + 3 + 1 + 3
    assert prompts.loc[0, "prompt_norm"] == "a sunset over the ocean in watercolor"
    assert (prompts[["toxicity", "threat", "max_toxicity"]] <= 0.2).all().all()
    assert json.loads(json.dumps(report.to_dict()))["bad_rows_total"] == 5


def test_threshold_is_configurable(spark: SparkSession, vidprom_csv: Path) -> None:
    _, report = filter_prompts(spark, str(vidprom_csv), max_toxicity=1.0)
    assert report.toxic_dropped == 0
    assert report.duplicates_dropped == 2  # the toxic copy of the sunset prompt is now a duplicate


def test_main_writes_parquet_and_report(spark: SparkSession, vidprom_csv: Path, tmp_path: Path) -> None:
    out, report_path = tmp_path / "prompts.parquet", tmp_path / "prompts.json"
    argv = ["--vidprom-csv", str(vidprom_csv), "--out", str(out), "--report", str(report_path),
            "--max-toxicity", "0.2"]  # fmt: skip
    assert main(argv) == 0
    assert sorted(pd.read_parquet(out)["uuid"]) == ["u01", "u06", "u12"]
    assert json.loads(report_path.read_text())["selected"] == 3


def test_prompts_are_cleaned_and_line_breaks_kept_in_their_record(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [
        row("v1", 'A cat\x00 in\na\r\nhat, "cinematic"'),  # NUL, quoted line breaks, quotes
        row("v2", "a cat in a hat cinematic"),  # the same prompt once cleaned: a duplicate
        row("v3", "Ni\u200dke shoes \u2764\ufe0f", scores=["inf", *CLEAN[1:]]),  # non-finite score: bad
    ]
    path = tmp_path / "VidProM_unique.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(VIDPROM_COLUMNS)
        writer.writerows(rows)
    df, report = filter_prompts(spark, str(path), max_toxicity=0.2)
    prompts = df.toPandas()
    assert report.rows_read == 3 and report.prompts_with_control_characters == 1
    assert report.bad_rows == {"non_finite_number": 1} and report.duplicates_dropped == 1
    assert list(prompts["prompt"]) == ['A cat in a hat, "cinematic"']
