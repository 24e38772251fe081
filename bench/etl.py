"""Benchmark of the nightly_etl building blocks on a generated mirror, all figures from one run.

1. Curation: ``spark_jobs.curate_clips.curate`` on ``--rows`` metadata rows, end to end, against the same
   logic written for DuckDB (a single-node reference: how much the Spark job pays for being distributable).
2. Selective extraction: bytes fetched by ranged zip reads against the compressed size of the selected
   members (goal: at most 1.2x) and against the size of the zip parts touched.
3. Resizing: clips per second of our probe + ``resize_video`` + verify path, parallel across parts as
   ``extract_clips`` runs it, against a plain sequential ffmpeg loop on the same clips.

Needs no running services: ``python -m bench.etl [--rows 1000000] [--clips 200] [--parts 8]``;
``--master spark://HOST:PORT`` runs the Spark side on a standalone cluster instead of ``local[2]``
(``adfame stack up spark`` starts the stack's: ``spark://127.0.0.1:7077``), the same figures either way;
``--damage NAME`` (repeatable) runs it on a mirror with real-world damage (``devkit.mirror_damage``), so
that both engines show they read and clean hostile CSVs alike.
See ``bench/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import imageio_ffmpeg
import pyarrow as pa
import pyarrow.compute as pc

from bench.report import figure, progress, say
from devkit.mirror import MAPPING_DIR, MirrorSummary, generate_mirror
from devkit.mirror_damage import Damage
from etl.config import MediaConfig
from etl.extract import ClipRef, ExtractionStats, extract_clips
from etl.media import VideoInfo, probe_video, resize_video
from etl.sources import LocalSource
from etl.zip_ranges import ZipReadStats, read_central_directory, read_members, resolve_part_files
from spark_jobs.csv_input import MISSING_FIELD, NEGATIVE_NUMBER, NON_FINITE_NUMBER, UNPARSABLE_NUMBER
from spark_jobs.curate_clips import (
    CONTROL_CHARACTER_IN_VIDEO,
    DUPLICATE_OTHER_CAPTION,
    DUPLICATE_SAME_CAPTION,
    NON_INTEGER_FRAMES,
    NUMERIC_COLUMNS,
    OPENVID_COLUMNS,
    REQUIRED_COLUMNS,
    ZERO_FRAMES_OR_FPS,
    CurationReport,
    curate,
)
from spark_jobs.filter_config import FilterConfig
from spark_jobs.session import get_spark, resolve_master
from spark_jobs.text import (
    CONTROL_CHARACTERS,
    DEFAULT_TAG_VOCABULARY,
    SOURCE_ID_LENGTH,
    clean_text,
    normalize_keywords,
)

FETCH_GOAL = 1.2  # bytes fetched per byte of selected member (issue 3)
# The generator has no clip-size option: its clips are 32 to 64 pixels high, so 16 is half the smallest
# and every clip is really scaled down.
DEFAULT_HEIGHT = 16
CRF, PRESET = 20, "veryfast"  # resize_video's defaults, used for the plain ffmpeg loop too
SPARK_DRIVER_MEMORY = "4g"
DUCKDB_MEMORY = "4GB"


T = TypeVar("T")


# ---- printing ------------------------------------------------------------------------------------
def mb(n: int) -> str:
    return f"{n / 1e6:,.3f} MB ({n:,} bytes)"


# ---- 1. curation ---------------------------------------------------------------------------------
@dataclass
class CurationRun:
    """One engine's curation of the same CSV: its time, its report, the selected clips, its settings."""

    engine: str
    seconds: float
    report: CurationReport
    refs: list[dict[str, str]] = field(default_factory=list)
    settings: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.report.rows_read / self.seconds if self.seconds else 0.0


def run_spark(
    mirror: MirrorSummary, cfg: FilterConfig, memory: str, master: str | None
) -> tuple[float, CurationRun]:
    """Session start (reported apart: a cluster keeps one warm) and ``curate`` + a count of its output.

    The local JVM's default heap (1g) runs out of memory reading back the cached stage of a million rows,
    so the driver gets ``memory`` (``PYSPARK_SUBMIT_ARGS`` set by the caller wins), and so does each
    executor on a cluster (``SPARK_EXECUTOR_MEMORY`` set by the caller wins). ``master``: as
    ``get_spark`` resolves it when None.
    """
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {memory} pyspark-shell")
    os.environ.setdefault("SPARK_EXECUTOR_MEMORY", memory)
    with progress(f"Spark session start ({resolve_master(master)})"):
        started = time.monotonic()
        spark = get_spark("adfame-bench-etl", master)
        session_s = time.monotonic() - started
    mappings = [str(mirror.openvid_dir / MAPPING_DIR / "*.csv")]
    try:
        with progress("Spark curate + count", lambda: _spark_stages(spark)):
            started = time.monotonic()
            curated, report = curate(spark, str(mirror.metadata_csv), mappings, cfg)
            counted = curated.count()
            seconds = time.monotonic() - started
        if counted != report.selected:
            say(f"  ! Spark output has {counted} rows but its report says {report.selected} selected")
        refs = [
            row.asDict(recursive=True)
            for row in curated.select("video", "part", "video_path", "locations").collect()
        ]
        settings = _spark_settings(spark)
    finally:
        spark.stop()  # free the JVM's memory and cores before DuckDB and ffmpeg run
    return session_s, CurationRun("Spark", seconds, report, refs, settings)


def _spark_settings(spark: Any) -> str:
    """Where and with what the curation ran: the master, memory, and on a cluster its executors."""
    conf = spark.sparkContext.getConf()
    settings = (
        f"master {spark.sparkContext.master}, driver memory {conf.get('spark.driver.memory', '1g')}, "
        f"{spark.conf.get('spark.sql.shuffle.partitions')} shuffle partitions "
        f"(adaptive execution {spark.conf.get('spark.sql.adaptive.enabled')})"
    )
    if spark.sparkContext.master.startswith("local"):
        return settings
    # The driver's own block manager is in the list too; the rest are the executors.
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    memory = conf.get("spark.executor.memory", "1g")
    return f"{settings}, {executors} executor(s) of {memory}"


def _spark_stages(spark: Any) -> str:
    tracker = spark.sparkContext.statusTracker()
    active = []
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            active.append(f"stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks")
    return ", ".join(active)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _csv_columns(con: duckdb.DuckDBPyConnection, path: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_csv({_sql_str(path)})").fetchall()]


def _mapped_select(present: Sequence[str], columns: Mapping[str, str]) -> tuple[str, list[str]]:
    """``source AS ours`` for each wanted column, matched like ``read_csv_as_strings`` (case, spaces)."""
    by_key = {" ".join(name.strip().lower().split()): name for name in present}
    selected, missing = [], []
    for source_name, ours in columns.items():
        actual = by_key.get(" ".join(source_name.lower().split()))
        if actual is None:
            missing.append(source_name)
            selected.append(f"NULL::VARCHAR AS {ours}")
        else:
            selected.append(f'"{actual.replace(chr(34), chr(34) * 2)}" AS {ours}')
    return ", ".join(selected), missing


def _first_reason(checks: Sequence[tuple[str, str]]) -> str:
    """SQL form of ``first_reason``: a null condition counts as false, as ``coalesce(c, false)`` does."""
    whens = " ".join(f"WHEN {condition} THEN {_sql_str(reason)}" for condition, reason in checks)
    return f"CASE {whens} END"


def _contains_word(padded: str, keyword: str) -> str:
    return f"contains({padded}, {_sql_str(f' {keyword} ')})"


def duckdb_curation_sql(
    csv_columns: str, csv_path: str, mapping_glob: str, cfg: FilterConfig
) -> tuple[list[tuple[str, str]], str, str]:
    """The statements of the DuckDB form of ``curate``: (step label, SQL) pairs, report and output queries.

    Rules mirror ``spark_jobs``: fields read as strings (RFC 4180: quoted commas, quotes and line
    breaks, CRLF, a BOM) and parsed with ``TRY_CAST`` (finite values only), one reason per bad row in the
    same priority; the caption cleaned by ``spark_jobs.text.clean_text`` itself (a Python UDF: control
    characters to spaces, format characters and variation selectors removed), then normalised as NFKC
    (a vectorised Arrow UDF, since DuckDB has only ``nfc_normalize``), lower case and every run of non
    letter/mark/digit characters to one space; per video the first row by (normalised caption, caption,
    values) stays; keywords match whole words on the padded caption; thresholds in the same order; every
    mapping part of each video, the first one its location; tags and source ids computed as in
    ``spark_jobs.text``.
    """
    numbers = {name: f"parse_number({name})" for name in NUMERIC_COLUMNS}
    fields = {name: name for name in REQUIRED_COLUMNS} | {"caption": "clean_text(caption)"}
    missing = " OR ".join(f"nullif(trim({field}), '') IS NULL" for field in fields.values())
    non_finite = " OR ".join(
        f"NOT coalesce(isfinite(TRY_CAST(trim({name}) AS DOUBLE)), true)" for name in NUMERIC_COLUMNS
    )
    unparsable = " OR ".join(
        f"(nullif(trim({name}), '') IS NOT NULL AND {value} IS NULL)" for name, value in numbers.items()
    )
    negative = " OR ".join(f"{value} < 0" for value in numbers.values())
    control = f"regexp_matches({{}}, {_sql_str(CONTROL_CHARACTERS)})"
    bad = _first_reason(
        [
            (missing, MISSING_FIELD),
            (non_finite, NON_FINITE_NUMBER),
            (unparsable, UNPARSABLE_NUMBER),
            (negative, NEGATIVE_NUMBER),
            (f"{numbers['frames']} <> floor({numbers['frames']})", NON_INTEGER_FRAMES),
            (f"{numbers['frames']} = 0 OR {numbers['fps']} = 0", ZERO_FRAMES_OR_FPS),
            (control.format("video"), CONTROL_CHARACTER_IN_VIDEO),
        ]
    )
    values = ", ".join(f"{value} AS {name}" for name, value in numbers.items() if name != "frames")
    parsed = f"""
        CREATE OR REPLACE TEMP TABLE parsed AS
        SELECT *, trim(regexp_replace(lower(nfkc(caption)), '[^\\p{{L}}\\p{{M}}\\p{{N}}]+', ' ', 'g'))
                  AS caption_norm
        FROM (
            SELECT trim(video) AS video,
                   clean_text(caption) AS caption,
                   {values},
                   TRY_CAST(trunc({numbers["frames"]}) AS INTEGER) AS frames,
                   nullif(trim(clean_text(camera_motion)), '') AS camera_motion,
                   {bad} AS _bad,
                   coalesce({control.format("caption")}, false) AS _control
            FROM (SELECT {csv_columns} FROM read_csv({_sql_str(csv_path)}, header = true,
                  all_varchar = true, quote = '"', escape = '"'))
        )"""

    padded = "(' ' || caption_norm || ' ')"
    checks: list[tuple[str, str]] = []
    keywords = normalize_keywords(cfg.brand_keywords)
    if keywords:
        any_keyword = " OR ".join(_contains_word(padded, k) for k in keywords)
        checks.append((f"NOT coalesce({any_keyword}, false)", "no_brand_keyword"))
    checks += [
        (f"seconds < {cfg.min_seconds!r}", "too_short"),
        (f"seconds > {cfg.max_seconds!r}", "too_long"),
        (f"aesthetic < {cfg.min_aesthetic!r}", "low_aesthetic"),
        (f"motion < {cfg.min_motion!r}", "low_motion"),
        (f"temporal_consistency < {cfg.min_temporal_consistency!r}", "low_temporal_consistency"),
    ]
    order = ", ".join(
        f"{name} ASC NULLS FIRST" for name in ("caption_norm", "caption", *NUMERIC_COLUMNS, "camera_motion")
    )
    staged = f"""
        CREATE OR REPLACE TEMP TABLE staged AS
        SELECT * EXCLUDE (_dup, _filtered),
               CASE WHEN _bad IS NOT NULL THEN 'bad' WHEN _dup IS NOT NULL THEN 'duplicate'
                    WHEN _filtered IS NOT NULL THEN 'filtered' END AS _stage,
               coalesce(_bad, _dup, _filtered) AS _reason
        FROM (
            SELECT *,
                   CASE WHEN row_number() OVER w = 1 THEN NULL
                        WHEN caption_norm = first_value(caption_norm) OVER w
                        THEN {_sql_str(DUPLICATE_SAME_CAPTION)}
                        ELSE {_sql_str(DUPLICATE_OTHER_CAPTION)} END AS _dup,
                   {_first_reason(checks)} AS _filtered
            FROM parsed
            WINDOW w AS (PARTITION BY video, _bad IS NULL ORDER BY {order})
        )"""
    mappings = f"""
        CREATE OR REPLACE TEMP TABLE mappings AS
        SELECT video, arg_min(part, (part, video_path)) AS part,
               arg_min(video_path, (part, video_path)) AS video_path, count(DISTINCT part) AS parts
        FROM (
            SELECT trim(video) AS video,
                   regexp_replace(regexp_extract(filename, '([^/\\\\]*)$', 1), '(?i)\\.csv$', '') AS part,
                   trim(video_path) AS video_path
            FROM read_csv({_sql_str(mapping_glob)}, header = true, all_varchar = true, filename = true)
        )
        WHERE video IS NOT NULL AND video <> '' AND video_path IS NOT NULL
        GROUP BY video"""

    tag_pairs = [
        (f"{category}:{keyword}", keyword)
        for category, words in DEFAULT_TAG_VOCABULARY.items()
        for keyword in normalize_keywords(words)
    ]
    tag_padded = "(' ' || coalesce(caption_norm, '') || ' ')"
    tags = ", ".join(
        f"CASE WHEN {_contains_word(tag_padded, k)} THEN {_sql_str(t)} END" for t, k in tag_pairs
    )
    stem = "regexp_replace(regexp_extract(video, '([^/]*)$', 1), '\\.[A-Za-z0-9]+$', '')"
    source_id = f"""CASE WHEN video IS NULL THEN NULL
        WHEN length({stem}) > {SOURCE_ID_LENGTH} AND substr({stem}, {SOURCE_ID_LENGTH + 1}, 1) = '_'
        THEN substr({stem}, 1, {SOURCE_ID_LENGTH})
        WHEN contains({stem}, '_') THEN regexp_extract({stem}, '^(.*)_[^_]*$', 1)
        ELSE {stem} END"""
    located = f"""
        CREATE OR REPLACE TEMP TABLE located AS
        SELECT s.video, {source_id} AS source_video_id, s.caption, s.caption_norm,
               list_filter([{tags}], lambda t: t IS NOT NULL) AS tags,
               {", ".join(f"s.{name}" for name in NUMERIC_COLUMNS)}, s.camera_motion, m.part, m.video_path,
               m.parts
        FROM staged s LEFT JOIN mappings m USING (video)
        WHERE s._stage IS NULL"""
    curated = """
        CREATE OR REPLACE TEMP TABLE curated AS
        SELECT * FROM located WHERE part IS NOT NULL ORDER BY video"""
    steps = [
        ("read CSV, parse, NFKC-normalise", parsed),
        ("dedupe, keyword and threshold filters", staged),
        ("read mappings", mappings),
        ("tags, source ids, mapping join", located),
        ("selected clips, sorted", curated),
    ]
    report = "SELECT _stage, _reason, _control, count(*) FROM staged GROUP BY ALL"
    totals = "SELECT count(*), count(part), count(*) FILTER (WHERE parts > 1) FROM located"
    return steps, report, totals


def _clean_texts(values: pa.Array) -> pa.Array:
    """``clean_text`` over an Arrow batch: DuckDB cleans captions with the very function Spark runs."""
    return pa.array([clean_text(value) for value in values.to_pylist()], type=pa.string())


def run_duckdb(mirror: MirrorSummary, cfg: FilterConfig, workdir: Path) -> CurationRun:
    """The same curation in DuckDB, timed from reading the CSV to the sorted, materialised selection."""
    spill = workdir / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": str(spill)})
    try:
        con.create_function(
            "nfkc", lambda values: pc.utf8_normalize(values, "NFKC"), ["VARCHAR"], "VARCHAR", type="arrow"
        )
        con.create_function("clean_text", _clean_texts, ["VARCHAR"], "VARCHAR", type="arrow")
        con.execute(
            "CREATE MACRO parse_number(x) AS "
            "CASE WHEN isfinite(TRY_CAST(trim(x) AS DOUBLE)) THEN TRY_CAST(trim(x) AS DOUBLE) END"
        )
        csv_path = str(mirror.metadata_csv)
        started = time.monotonic()
        columns, missing = _mapped_select(_csv_columns(con, csv_path), OPENVID_COLUMNS)
        steps, report_sql, totals_sql = duckdb_curation_sql(
            columns, csv_path, str(mirror.openvid_dir / MAPPING_DIR / "*.csv"), cfg
        )
        for label, sql in steps:
            with progress(f"DuckDB: {label}"):
                con.execute(sql)
        report = CurationReport(missing_columns=missing)
        dropped = {
            "bad": report.bad_rows,
            "duplicate": report.duplicates_dropped,
            "filtered": report.filtered_out,
        }
        for stage, reason, control, count in con.execute(report_sql).fetchall():
            report.rows_read += count
            report.captions_with_control_characters += count if control else 0
            if stage is not None:
                dropped[stage][reason] = dropped[stage].get(reason, 0) + count
        ((kept, mapped, conflicting),) = con.execute(totals_sql).fetchall()
        report.selected, report.unmapped, report.conflicting_mappings = mapped, kept - mapped, conflicting
        seconds = time.monotonic() - started
        refs = [
            dict(zip(("video", "part", "video_path"), row, strict=True))
            for row in con.execute("SELECT video, part, video_path FROM curated").fetchall()
        ]
        ((threads,),) = con.execute("SELECT current_setting('threads')").fetchall()
    finally:
        con.remove_function("nfkc")
        con.remove_function("clean_text")
        con.close()
    return CurationRun("DuckDB", seconds, report, refs, f"{threads} threads, memory limit {DUCKDB_MEMORY}")


def print_curation(spark_session_s: float, spark: CurationRun, duck: CurationRun) -> None:
    say("\n== 1. Curation throughput ==")
    figure("metadata rows read", f"{spark.report.rows_read:,} (Spark) / {duck.report.rows_read:,} (DuckDB)")
    figure("Spark settings", spark.settings)
    figure("DuckDB settings", duck.settings)
    figure("Spark session start", f"{spark_session_s:.1f} s (not in the throughput)")
    for run in (spark, duck):
        figure(
            f"{run.engine} curation, end to end",
            f"{run.seconds:.1f} s = {run.rows_per_s:,.0f} rows/s ({run.report.selected:,} selected)",
        )
    ratio = spark.rows_per_s / duck.rows_per_s if duck.rows_per_s else math.nan
    figure("Spark/DuckDB throughput ratio", f"{ratio:.3f}x (DuckDB {1 / ratio:.1f}x faster)")
    figure(
        "selected rows",
        f"Spark {spark.report.selected:,}, DuckDB {duck.report.selected:,}: "
        + ("SAME" if spark.report.selected == duck.report.selected else "DIFFERENT"),
    )
    ours, theirs = spark.report.to_dict(), duck.report.to_dict()
    differing = sorted(key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key))
    if not differing:
        say("  the two reports match, count by count and reason by reason:")
        for key in (
            "bad_rows_total",
            "duplicates_total",
            "filtered_total",
            "unmapped",
            "conflicting_mappings",
            "captions_with_control_characters",
            "selected",
        ):
            figure(f"  {key}", f"{ours[key]:,}")
        return
    say("  the reports differ (Spark vs DuckDB):")
    for key in differing:
        figure(f"  {key}", f"{ours.get(key)} vs {theirs.get(key)}")
    spark_videos = {ref["video"] for ref in spark.refs}
    duck_videos = {ref["video"] for ref in duck.refs}
    only_spark, only_duck = sorted(spark_videos - duck_videos), sorted(duck_videos - spark_videos)
    figure("  selected only by Spark", f"{len(only_spark)} {only_spark[:10]}")
    figure("  selected only by DuckDB", f"{len(only_duck)} {only_duck[:10]}")
    say(
        "  known places the engines can disagree: lower-casing of a few special letters (Java vs\n"
        "  utf8proc), number strings only one cast accepts (Java takes '1d', DuckDB takes '1_0')"
    )


# ---- 2. selective extraction ---------------------------------------------------------------------
def read_selected(
    root: Path, refs: Sequence[ClipRef], out_dir: Path | None = None
) -> tuple[int, ZipReadStats, dict[str, list[Path]]]:
    """Ranged reads only, with the reader ``extract_clips`` uses (directory, then coalesced members).

    Returns the bytes the source fetched, the reader's statistics and, when ``out_dir`` is given, the
    members written there per part (the raw clips the resize benchmark starts from).
    """
    source = LocalSource(root)
    by_part: dict[str, list[ClipRef]] = {}
    for ref in refs:
        by_part.setdefault(ref.part, []).append(ref)
    parts = resolve_part_files(source, by_part)
    stats = ZipReadStats()
    written: dict[str, list[Path]] = {}
    for name, clips in sorted(by_part.items()):
        index = read_central_directory(parts[name], stats)
        files = {clip.video_path: clip.file_name for clip in clips}
        for read in read_members(parts[name], list(files), index=index, stats=stats):
            if out_dir is not None and read.data is not None:
                path = out_dir / name / files[read.name]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(read.data)
                written.setdefault(name, []).append(path)
    return source.bytes_fetched, stats, written


def print_fetch(label: str, fetched: int, reads: ZipReadStats | ExtractionStats) -> None:
    selected, parts_bytes = reads.selected_compressed_bytes, reads.parts_bytes
    ratio = fetched / selected if selected else math.nan
    verdict = "PASS" if ratio <= FETCH_GOAL else "MISS"
    say(f"  {label}:")
    figure("  bytes fetched by ranged reads", mb(fetched))
    figure("    of which zip tails + central directories", mb(reads.directory_bytes))
    figure("    of which member reads (headers, data, gaps)", mb(reads.member_bytes))
    figure("  compressed size of the selected members", mb(selected))
    figure(f"  fetched / selected (goal <= {FETCH_GOAL}x)", f"{ratio:.3f}x  {verdict}")
    figure(f"  size of the {reads.parts} zip parts touched", mb(parts_bytes))
    figure("  fetched / parts touched", f"{fetched / parts_bytes:.3f}x ({100 * fetched / parts_bytes:.1f}%)")


def run_extraction(
    mirror: MirrorSummary, refs: list[dict[str, str]], media: MediaConfig, workdir: Path
) -> tuple[ExtractionStats, dict[str, list[Path]]]:
    """``extract_clips`` on the curated clips, then ranged reads alone for every other clip.

    Returns the extraction's statistics and the raw ok clips per part for the resize benchmark.
    """
    say("\n== 2. Selective extraction ==")
    with progress(f"extract_clips: {len(refs)} curated clips, {media.workers} workers"):
        result = extract_clips(refs, LocalSource(mirror.openvid_dir), workdir / "extracted", media)
    stats = result.stats
    total_parts = sum(path.stat().st_size for path in mirror.part_files)
    figure("clips in the mirror", f"{mirror.clips} in {mirror.parts} parts, {mb(total_parts)}")
    figure(
        "curated selection (extract_clips)",
        f"{len(refs)} clips: {stats.clips_ok} ok, {stats.clips_corrupt} corrupt, "
        f"{stats.clips_missing} missing",
    )
    print_fetch("curated clips through extract_clips", stats.bytes_fetched, stats)
    every_other = [
        ClipRef(
            video,
            f"OpenVid_part{mirror.clip_parts[video]}",
            f"OpenVid_part{mirror.clip_parts[video]}/{video}",
        )
        for video in sorted(mirror.clip_videos)[::2]
    ]
    fetched, other, _ = read_selected(mirror.openvid_dir, every_other)
    print_fetch(f"every other clip ({len(every_other)}), ranged reads only", fetched, other)
    ok = [ClipRef.from_record(row) for row in result.ok_rows]
    _, _, raw = read_selected(mirror.openvid_dir, ok, workdir / "raw")
    return stats, raw


# ---- 3. resizing ---------------------------------------------------------------------------------
def our_resize(raw: Mapping[str, list[Path]], out_dir: Path, height: int, workers: int) -> list[VideoInfo]:
    """What ``extract_clips`` does per clip after the read: probe, ``resize_video``, check frames and fps.

    One thread per part, at most ``workers`` at a time, clips of a part in turn: the same parallelism.
    """

    def one_part(paths: list[Path]) -> list[VideoInfo]:
        sources = []
        for path in paths:
            original = probe_video(path)
            info = resize_video(path, out_dir / path.parent.name / path.name, height)
            if info.frames != original.frames or not math.isclose(info.fps, original.fps, rel_tol=0.01):
                raise RuntimeError(f"{path.name}: resize changed frames/fps")
            sources.append(original)
        return sources

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(raw)))) as pool:
        return [info for infos in pool.map(one_part, raw.values()) for info in infos]


def plain_ffmpeg(paths: Sequence[Path], out_dir: Path, height: int) -> None:
    """The baseline: one ffmpeg per clip, in turn, scale to the height with the same codec settings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        out = out_dir / f"{path.parent.name}-{path.name}"
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-i", str(path), "-an",
            "-vf", f"scale=-2:{height}", "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF),
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"plain ffmpeg failed on {path.name}: {result.stderr.strip()[-300:]}")


def _timed(label: str, action: Callable[[], T]) -> tuple[T, float]:
    with progress(label):
        started = time.monotonic()
        outcome = action()
        return outcome, time.monotonic() - started


def run_resize(
    raw: Mapping[str, list[Path]], extraction: ExtractionStats, height: int, workers: int, workdir: Path
) -> None:
    say("\n== 3. Resizing ==")
    paths = [path for part in sorted(raw) for path in raw[part]]
    if not paths:
        say("  no decodable clip was selected: nothing to resize")
        return
    n = len(paths)
    plain_ffmpeg(paths[:1], workdir / "warmup", height)  # load the binary once, outside any timing
    sources, ours_s = _timed(
        f"our path, {workers} workers: {n} clips", lambda: our_resize(raw, workdir / "ours", height, workers)
    )
    _, ours_1_s = _timed(
        f"our path, 1 worker: {n} clips", lambda: our_resize(raw, workdir / "one", height, 1)
    )
    _, plain_s = _timed(f"plain ffmpeg: {n} clips", lambda: plain_ffmpeg(paths, workdir / "plain", height))

    heights = sorted({info.height for info in sources})
    processed = extraction.clips_ok + extraction.clips_corrupt
    figure("clips (the curated ones that decode)", f"{n}")
    figure("source heights -> target height", f"{heights[0]}..{heights[-1]} px -> {height} px")
    if heights[0] <= height:
        say(f"  ! some sources are not taller than {height} px: those are re-encoded, not scaled down")
    figure("decodes per clip", "our path 3 (probe, resize, verify decode; PyAV in-process), plain ffmpeg 1")
    figure(
        "extract_clips end to end (read+probe+resize)",
        f"{processed / extraction.seconds:.2f} clips/s ({processed} clips, "
        f"{extraction.clips_corrupt} quarantined, in {extraction.seconds:.1f} s)",
    )
    figure(f"our path, {workers} workers in parallel", f"{n / ours_s:.2f} clips/s ({ours_s:.1f} s)")
    figure("our path, 1 worker", f"{n / ours_1_s:.2f} clips/s ({ours_1_s:.1f} s)")
    figure("plain ffmpeg, sequential", f"{n / plain_s:.2f} clips/s ({plain_s:.1f} s)")
    figure(f"ratio our path ({workers} workers) / plain ffmpeg", f"{plain_s / ours_s:.2f}x")
    figure("ratio our path (1 worker) / plain ffmpeg", f"{plain_s / ours_1_s:.2f}x")


# ---- main ----------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.etl", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="OpenVid metadata rows")
    parser.add_argument("--clips", type=int, default=200, help="rows with a real clip in the zip parts")
    parser.add_argument("--parts", type=int, default=8, help="zip parts")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT, help="resize target height (px)")
    parser.add_argument(
        "--workers", type=int, default=MediaConfig().workers, help="extraction workers (default: MediaConfig)"
    )
    parser.add_argument(
        "--spark-memory",
        default=SPARK_DRIVER_MEMORY,
        help="Spark driver (JVM heap) memory, and each executor's on a cluster",
    )
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master, e.g. spark://127.0.0.1:7077 (default: as get_spark resolves it, local[2])",
    )
    parser.add_argument("--seed", type=int, default=0, help="mirror seed")
    parser.add_argument(
        "--damage",
        action="append",
        default=[],
        choices=[str(d) for d in Damage if d is not Damage.TRUNCATED_PART],
        help="real-world damage in the mirror (repeatable; a truncated part would only stop part 2)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where temporary data goes (default: $TMPDIR)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.clips < 1 or args.parts < 1 or args.clips > args.rows:
        parser.error("need rows >= clips >= 1 and parts >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("etl.extract").setLevel(logging.ERROR)  # quarantined clips are counted in the figures
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="adfame-bench-etl-", dir=args.workdir))
    started = time.monotonic()
    damage = f", damage: {', '.join(args.damage)}" if args.damage else ""
    say(
        f"bench.etl: {args.rows:,} rows, {args.clips} clips in {args.parts} parts{damage}; "
        f"work folder {workdir}"
    )
    try:
        with progress(f"generating the mirror ({args.rows:,} rows)"):
            mirror = generate_mirror(
                workdir / "mirror",
                args.rows,
                args.clips,
                args.parts,
                args.seed,
                image_count=0,
                prompt_rows=1,
                damages=args.damage,
            )
        csv_bytes = mirror.metadata_csv.stat().st_size
        figure("metadata CSV", mb(csv_bytes))
        figure("generated duplicates / bad rows", f"{mirror.duplicate_rows:,} / {mirror.bad_rows:,}")
        cfg = FilterConfig()
        spark_session_s, spark = run_spark(mirror, cfg, args.spark_memory, args.master)
        duck = run_duckdb(mirror, cfg, workdir)
        print_curation(spark_session_s, spark, duck)
        media = MediaConfig(video_height=args.height, workers=args.workers)
        extraction, raw = run_extraction(mirror, spark.refs, media, workdir)
        run_resize(raw, extraction, args.height, args.workers, workdir)
    finally:
        if args.keep:
            say(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"\nbench.etl done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
