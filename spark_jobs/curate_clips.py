"""Curate brand-relevant training clips from the OpenVid-1M metadata: clean, dedup, filter, tag, locate.

Every input row ends in exactly one place, so the report adds up: bad (unusable fields), duplicate,
filtered out (a threshold), unmapped (no zip part holds it) or selected. Captions are cleaned as
``spark_jobs.text.clean_text`` says (control characters become spaces, counted in the report; invisible
format characters go), and a video listed in several parts' mapping files keeps every part, in part order,
so that extraction finds it in whichever holds it (the report counts these conflicting mappings).
Run alone with ``python -m spark_jobs.curate_clips`` or ``spark-submit spark_jobs/curate_clips.py`` (with
this project on the driver's ``PYTHONPATH`` or shipped by ``--py-files``); ``--master`` picks the cluster.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_jobs.csv_input import (
    FILE_NAME_COLUMN,
    bad_row_reason,
    blank_to_null,
    count_by,
    first_reason,
    parse_number,
    read_csv_as_strings,
)
from spark_jobs.filter_config import FilterConfig
from spark_jobs.outputs import RowReport, add_output_options, run_alone
from spark_jobs.text import (
    DEFAULT_TAG_VOCABULARY,
    clean_text_col,
    extract_tags_col,
    has_control_character_col,
    has_keyword_col,
    normalize_caption_col,
    source_video_id_col,
)

log = logging.getLogger(__name__)

# OpenVid-1M header -> our column name.
OPENVID_COLUMNS: Mapping[str, str] = {
    "video": "video",
    "caption": "caption",
    "aesthetic score": "aesthetic",
    "motion score": "motion",
    "temporal consistency score": "temporal_consistency",
    "camera motion": "camera_motion",
    "frame": "frames",
    "fps": "fps",
    "seconds": "seconds",
}
MAPPING_COLUMNS: Mapping[str, str] = {"video": "video", "video_path": "video_path"}
NUMERIC_COLUMNS = ("aesthetic", "motion", "temporal_consistency", "frames", "fps", "seconds")
# camera motion is descriptive only; a clip without it is still a usable training clip.
REQUIRED_COLUMNS = ("video", "caption", *NUMERIC_COLUMNS)
OUTPUT_COLUMNS = (
    "video", "source_video_id", "caption", "caption_norm", "tags", "aesthetic", "motion",
    "temporal_consistency", "camera_motion", "frames", "fps", "seconds", "part", "video_path", "locations",
)  # fmt: skip

ZERO_FRAMES_OR_FPS = "zero_frames_or_fps"
CONTROL_CHARACTER_IN_VIDEO = "control_character_in_video"
NON_INTEGER_FRAMES = "non_integer_frames"
DUPLICATE_SAME_CAPTION = "same_video_same_caption"
DUPLICATE_OTHER_CAPTION = "same_video_other_caption"
_BAD, _DUPLICATE, _FILTERED = "bad", "duplicate", "filtered"


@dataclass(kw_only=True)
class CurationReport(RowReport):
    """Where the input rows went: bad, duplicate, filtered out, unmapped or selected."""

    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    filtered_out: dict[str, int] = field(default_factory=dict)
    unmapped: int = 0
    captions_with_control_characters: int = 0  # cleaned (control characters to spaces), not dropped
    conflicting_mappings: int = 0  # selected clips listed in more than one part's mapping file

    @property
    def duplicates_total(self) -> int:
        return sum(self.duplicates_dropped.values())

    @property
    def filtered_total(self) -> int:
        return sum(self.filtered_out.values())

    def to_dict(self) -> dict[str, object]:
        return {
            **super().to_dict(),
            "duplicates_total": self.duplicates_total,
            "filtered_total": self.filtered_total,
        }

    def outcome(self) -> str:
        return (
            f"{super().outcome()}, {self.duplicates_total} duplicates, {self.filtered_total} filtered, "
            f"{self.unmapped} unmapped, {self.conflicting_mappings} mapped to several parts, "
            f"{self.captions_with_control_characters} captions with control characters cleaned"
        )


def _parsed(raw: DataFrame) -> DataFrame:
    """Typed columns, the cleaned caption, ``_bad`` (the reason a row is unusable, or null) and
    ``_control`` (whether its caption held control characters)."""
    numbers = {name: parse_number(F.col(name)) for name in NUMERIC_COLUMNS}
    fields = {name: F.col(name) for name in REQUIRED_COLUMNS}
    fields["caption"] = clean_text_col("caption")  # only invisible characters: a missing caption
    reason = bad_row_reason(fields, numbers, REQUIRED_COLUMNS)
    frames = numbers["frames"]
    reason = first_reason(
        [
            (reason.isNotNull(), reason),
            (frames != F.floor(frames), F.lit(NON_INTEGER_FRAMES)),
            ((frames == 0) | (numbers["fps"] == 0), F.lit(ZERO_FRAMES_OR_FPS)),
            # A clip's name is its key in the zip part and the tables: it is not cleaned, it is refused.
            (has_control_character_col("video"), F.lit(CONTROL_CHARACTER_IN_VIDEO)),
        ]
    )
    return raw.select(
        F.trim("video").alias("video"),
        fields["caption"].alias("caption"),
        *(numbers[name].alias(name) for name in NUMERIC_COLUMNS if name != "frames"),
        frames.cast("int").alias("frames"),
        blank_to_null(clean_text_col("camera_motion")).alias("camera_motion"),
        reason.alias("_bad"),
        has_control_character_col("caption").alias("_control"),
    )


def _duplicate_reason(df: DataFrame) -> Column:
    """Which rows repeat a video already seen; the first by (normalised caption, caption, values) stays."""
    window = Window.partitionBy("video", F.col("_bad").isNull()).orderBy(
        "caption_norm", "caption", *NUMERIC_COLUMNS, "camera_motion"
    )
    first_norm = F.first("caption_norm").over(window)
    return (
        F.when(F.row_number().over(window) == 1, F.lit(None))
        .when(F.col("caption_norm") == first_norm, F.lit(DUPLICATE_SAME_CAPTION))
        .otherwise(F.lit(DUPLICATE_OTHER_CAPTION))
    )


def _filter_reason(cfg: FilterConfig) -> Column:
    """The first threshold a clean, unique row fails, or null when it is selected."""
    checks: list[tuple[Column, Column]] = []
    if cfg.brand_keywords:  # an empty vocabulary means "no brand filter", not "drop everything"
        checks.append(
            (~has_keyword_col(F.col("caption_norm"), cfg.brand_keywords), F.lit("no_brand_keyword"))
        )
    checks += [
        (F.col("seconds") < cfg.min_seconds, F.lit("too_short")),
        (F.col("seconds") > cfg.max_seconds, F.lit("too_long")),
        (F.col("aesthetic") < cfg.min_aesthetic, F.lit("low_aesthetic")),
        (F.col("motion") < cfg.min_motion, F.lit("low_motion")),
        (F.col("temporal_consistency") < cfg.min_temporal_consistency, F.lit("low_temporal_consistency")),
    ]
    return first_reason(checks)


def _staged(raw: DataFrame, cfg: FilterConfig) -> DataFrame:
    """Every input row with ``_stage``/``_reason`` naming why it was dropped (both null: kept)."""
    parsed = _parsed(raw).withColumn("caption_norm", normalize_caption_col("caption"))
    flagged = parsed.withColumn("_duplicate", _duplicate_reason(parsed)).withColumn(
        "_filtered", _filter_reason(cfg)
    )
    stage = first_reason(
        [
            (F.col("_bad").isNotNull(), F.lit(_BAD)),
            (F.col("_duplicate").isNotNull(), F.lit(_DUPLICATE)),
            (F.col("_filtered").isNotNull(), F.lit(_FILTERED)),
        ]
    )
    return (
        flagged.withColumn("_stage", stage)
        .withColumn("_reason", F.coalesce("_bad", "_duplicate", "_filtered"))
        .drop("_bad", "_duplicate", "_filtered")
    )


LOCATIONS_TYPE = "array<struct<part:string,video_path:string>>"


def read_mappings(spark: SparkSession, mapping_csvs: Sequence[str]) -> DataFrame:
    """``video -> (part, video_path, locations)`` from ``video_mappings/OpenVid_part{N}.csv`` (or globs).

    The part is the file's name without ``.csv``. A video listed in several parts keeps them all in
    ``locations`` (sorted by part, then member); ``part`` and ``video_path`` are the first of them.
    """
    if not mapping_csvs:
        return spark.createDataFrame(
            [], f"video string, part string, video_path string, locations {LOCATIONS_TYPE}"
        )
    mappings, missing = read_csv_as_strings(spark, mapping_csvs, MAPPING_COLUMNS, with_file_name=True)
    if missing:
        log.warning("mapping CSVs lack columns %s: their videos count as unmapped", missing)
    located = mappings.select(
        F.trim("video").alias("video"),
        F.regexp_replace(FILE_NAME_COLUMN, r"(?i)\.csv$", "").alias("part"),
        F.trim("video_path").alias("video_path"),
    ).where(F.col("video").isNotNull() & (F.col("video") != "") & F.col("video_path").isNotNull())
    every = F.array_sort(F.collect_set(F.struct("part", "video_path"))).alias("locations")
    return (
        located.groupBy("video")
        .agg(every)
        .select(
            "video",
            F.col("locations")[0]["part"].alias("part"),
            F.col("locations")[0]["video_path"].alias("video_path"),
            "locations",
        )
    )


def curate(
    spark: SparkSession,
    openvid_csv: str,
    mapping_csvs: list[str],
    cfg: FilterConfig,
    vocabulary: Mapping[str, Iterable[str]] = DEFAULT_TAG_VOCABULARY,
) -> tuple[DataFrame, CurationReport]:
    """The curated clips (``OUTPUT_COLUMNS``, sorted by video) and the report of where every row went."""
    raw, missing = read_csv_as_strings(spark, openvid_csv, OPENVID_COLUMNS)
    if missing:
        log.warning("%s lacks columns %s: rows that need them count as bad", openvid_csv, missing)
    staged = _staged(raw, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    report = CurationReport(missing_columns=missing)
    dropped = {_BAD: report.bad_rows, _DUPLICATE: report.duplicates_dropped, _FILTERED: report.filtered_out}
    for (stage, reason, control), count in count_by(staged, "_stage", "_reason", "_control").items():
        report.rows_read += count
        report.captions_with_control_characters += count if control else 0
        if stage is not None:
            dropped[stage][reason] = dropped[stage].get(reason, 0) + count

    kept = staged.where(F.col("_stage").isNull()).select(
        "video",
        source_video_id_col("video").alias("source_video_id"),
        "caption",
        "caption_norm",
        extract_tags_col(F.col("caption_norm"), vocabulary).alias("tags"),
        *NUMERIC_COLUMNS,
        "camera_motion",
    )
    located = kept.join(read_mappings(spark, mapping_csvs), on="video", how="left")
    located = located.persist(StorageLevel.MEMORY_AND_DISK)
    several_parts = F.size(F.array_distinct(F.col("locations.part"))) > 1
    totals = located.agg(
        F.count(F.lit(1)).alias("kept"),
        F.count("part").alias("mapped"),
        F.count(F.when(several_parts, True)).alias("conflicting"),
    ).first()
    report.selected = totals["mapped"]
    report.unmapped = totals["kept"] - totals["mapped"]
    report.conflicting_mappings = totals["conflicting"]
    staged.unpersist()
    curated = located.where(F.col("part").isNotNull()).select(*OUTPUT_COLUMNS).orderBy("video")
    return curated, report


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spark_jobs.curate_clips", description=__doc__.splitlines()[0])
    parser.add_argument("--openvid-csv", required=True, help="OpenVid-1M metadata CSV (local path or URI)")
    parser.add_argument("--mappings", required=True, help="folder holding video_mappings/OpenVid_part*.csv")
    add_output_options(parser)
    parser.add_argument(
        "--config", default=None, help="JSON file with FilterConfig fields (default: defaults)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job alone, on the thresholds of ``--config`` (default: ``FilterConfig()``)."""
    args = _parse_args(argv)
    cfg = FilterConfig.model_validate_json(Path(args.config).read_text()) if args.config else FilterConfig()
    mappings = [f"{args.mappings.rstrip('/')}/*.csv"]
    run_alone("adfame-curate-clips", args, lambda spark: curate(spark, args.openvid_csv, mappings, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
