"""Build the prompt pool from VidProM: prompts whose six toxicity scores are all at or under a threshold.

VidProM's videos are CC BY-NC, so only its prompts are used, as realistic text-to-video requests. Each input
row ends in one place: bad (unusable fields), toxic, duplicate (same normalised prompt) or selected. Prompts
are cleaned as captions are (``spark_jobs.text.clean_text``; prompts that held control characters are
counted). Run alone with ``python -m spark_jobs.filter_prompts`` or
``spark-submit spark_jobs/filter_prompts.py``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.csv_input import bad_row_reason, count_by, first_reason, parse_number, read_csv_as_strings
from spark_jobs.filter_config import FilterConfig
from spark_jobs.outputs import RowReport, add_output_options, run_alone
from spark_jobs.text import clean_text_col, has_control_character_col, normalize_caption_col

log = logging.getLogger(__name__)

TOXICITY_COLUMNS = ("toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit")
VIDPROM_COLUMNS: Mapping[str, str] = {
    "uuid": "uuid",
    "prompt": "prompt",
    "time": "time",
    **{name: name for name in TOXICITY_COLUMNS},
}
REQUIRED_COLUMNS = ("uuid", "prompt", *TOXICITY_COLUMNS)
OUTPUT_COLUMNS = ("uuid", "prompt", "prompt_norm", "time", *TOXICITY_COLUMNS, "max_toxicity")

SCORE_ABOVE_ONE = "score_above_one"
EMPTY_PROMPT = "empty_prompt"
_BAD, _TOXIC, _DUPLICATE = "bad", "toxic", "duplicate"


@dataclass(kw_only=True)
class PromptReport(RowReport):
    """Where the input rows went: bad, toxic, duplicate or selected; with the threshold that applied."""

    max_toxicity: float
    toxic_dropped: int = 0
    duplicates_dropped: int = 0
    prompts_with_control_characters: int = 0  # cleaned (control characters to spaces), not dropped

    def outcome(self) -> str:
        return f"{super().outcome()}, {self.toxic_dropped} toxic, {self.duplicates_dropped} duplicates"


def _parsed(raw: DataFrame) -> DataFrame:
    """Typed scores, the cleaned and the normalised prompt, their maximum, ``_bad`` (why a row is unusable,
    or null) and ``_control`` (whether the prompt held control characters)."""
    scores = {name: parse_number(F.col(name)) for name in TOXICITY_COLUMNS}
    prompt = clean_text_col("prompt")
    prompt_norm = normalize_caption_col(prompt)
    fields = {name: F.col(name) for name in REQUIRED_COLUMNS}
    fields["prompt"] = prompt
    unusable = bad_row_reason(fields, scores, REQUIRED_COLUMNS)
    reason = first_reason(
        [
            (unusable.isNotNull(), unusable),
            (F.greatest(*scores.values()) > 1, F.lit(SCORE_ABOVE_ONE)),
            (prompt_norm == "", F.lit(EMPTY_PROMPT)),
        ]
    )
    return raw.select(
        F.trim("uuid").alias("uuid"),
        prompt.alias("prompt"),
        prompt_norm.alias("prompt_norm"),
        F.trim("time").alias("time"),
        *(value.alias(name) for name, value in scores.items()),
        F.greatest(*scores.values()).alias("max_toxicity"),
        reason.alias("_bad"),
        has_control_character_col("prompt").alias("_control"),
    )


def _stage(max_toxicity: float) -> Column:
    """Bad, then toxic, then a later copy of a prompt already kept; null when the row is selected."""
    candidates = F.col("_bad").isNull() & (F.col("max_toxicity") <= max_toxicity)
    # Among clean, non-toxic rows the earliest (then smallest uuid) copy of a prompt stays.
    window = Window.partitionBy("prompt_norm", candidates).orderBy(
        F.col("time").asc_nulls_last(), "uuid", "prompt"
    )
    return first_reason(
        [
            (F.col("_bad").isNotNull(), F.lit(_BAD)),
            (~candidates, F.lit(_TOXIC)),
            (F.row_number().over(window) > 1, F.lit(_DUPLICATE)),
        ]
    )


def filter_prompts(
    spark: SparkSession, vidprom_csv: str, max_toxicity: float
) -> tuple[DataFrame, PromptReport]:
    """The prompt pool (``OUTPUT_COLUMNS``, sorted by uuid) and the report of where every row went."""
    raw, missing = read_csv_as_strings(spark, vidprom_csv, VIDPROM_COLUMNS)
    if missing:
        log.warning("%s lacks columns %s: rows that need them count as bad", vidprom_csv, missing)
    staged = _parsed(raw).withColumn("_stage", _stage(max_toxicity)).persist(StorageLevel.MEMORY_AND_DISK)
    report = PromptReport(max_toxicity=max_toxicity, missing_columns=missing)
    for (stage, bad_reason, control), count in count_by(staged, "_stage", "_bad", "_control").items():
        report.rows_read += count
        report.prompts_with_control_characters += count if control else 0
        if stage == _BAD:
            report.bad_rows[bad_reason] = report.bad_rows.get(bad_reason, 0) + count
        elif stage == _TOXIC:
            report.toxic_dropped += count
        elif stage == _DUPLICATE:
            report.duplicates_dropped += count
        else:
            report.selected += count
    prompts = staged.where(F.col("_stage").isNull()).select(*OUTPUT_COLUMNS).orderBy("uuid")
    return prompts, report


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spark_jobs.filter_prompts", description=__doc__.splitlines()[0])
    parser.add_argument("--vidprom-csv", required=True, help="VidProM_unique.csv (local path or URI)")
    add_output_options(parser)
    parser.add_argument(
        "--max-toxicity",
        type=float,
        default=FilterConfig().max_prompt_toxicity,
        help="highest allowed score on each of the six toxicity columns",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job alone, keeping prompts at or under ``--max-toxicity``."""
    args = _parse_args(argv)
    run_alone(
        "adfame-filter-prompts",
        args,
        lambda spark: filter_prompts(spark, args.vidprom_csv, args.max_toxicity),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
