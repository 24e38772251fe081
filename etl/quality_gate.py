"""The quality gate on the curated, split table: nothing is loaded unless every check passes.

Great Expectations 1.x checks the table itself (schema, nulls, ranges, uniqueness, row count); the checks
that need more than one column or the run's statistics (split shares, split overlap, corrupt and missing
shares with their causes, control characters in text, source columns) are ours. Both end in one
JSON-serialisable report and a list of readable failure reasons.
Great Expectations is imported lazily (it takes seconds) and runs quietly: no analytics, no progress bars.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from etl.config import GateConfig, SplitConfig
from etl.split import SPLITS, split_overlap, split_shares
from spark_jobs.text import has_control_character

STRING_TYPES = ["str", "StringDtype"]
INTEGER_TYPES = ["int8", "int16", "int32", "int64", "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype"]
FLOAT_TYPES = ["float32", "float64", "Float32Dtype", "Float64Dtype"]
NUMBER_TYPES = INTEGER_TYPES + FLOAT_TYPES

# Column -> accepted types. ``tags`` (arrays) is checked by us: GE has no type name for array values.
SCHEMA: Mapping[str, list[str] | None] = {
    "video": STRING_TYPES,
    "source_video_id": STRING_TYPES,
    "caption": STRING_TYPES,
    "caption_norm": STRING_TYPES,
    "tags": None,
    "aesthetic": NUMBER_TYPES,
    "motion": NUMBER_TYPES,
    "temporal_consistency": NUMBER_TYPES,
    "camera_motion": STRING_TYPES,
    "frames": INTEGER_TYPES,
    "fps": NUMBER_TYPES,
    "seconds": NUMBER_TYPES,
    "part": STRING_TYPES,
    "video_path": STRING_TYPES,
    "split": STRING_TYPES,
}
NON_NULL = ("video", "source_video_id", "caption", "caption_norm", "tags", "frames", "fps", "seconds",
            "part", "video_path", "split")  # fmt: skip
# Column -> (min, max, strict min): seconds, fps and frames must be positive; scores on their scales.
RANGES: Mapping[str, tuple[float | None, float | None, bool]] = {
    "seconds": (0, None, True),
    "fps": (0, None, True),
    "frames": (0, None, True),
    "aesthetic": (0, 10, False),
    "motion": (0, None, False),
    "temporal_consistency": (0, 1, False),
}


@dataclass
class GateResult:
    """Whether the curated table may be loaded, the full JSON report, and why not."""

    success: bool
    report: dict[str, Any]
    failures: list[str] = field(default_factory=list)


def _build_suite(cfg: GateConfig) -> Any:
    """The expectation suite for the curated table (GE objects; built on each run, they are cheap)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="curated_clips")
    for column, types in SCHEMA.items():
        suite.add_expectation(gxe.ExpectColumnToExist(column=column))
        if types is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=types))
    for column in NON_NULL:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column, (low, high, strict_min) in RANGES.items():
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=low, max_value=high, strict_min=strict_min
            )
        )
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="video"))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_clips))
    return suite


def _run_expectations(df: pd.DataFrame, cfg: GateConfig) -> dict[str, Any]:
    """Validate ``df`` in an ephemeral GE context; the result as GE's JSON dict."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("curated")
        .add_dataframe_asset("clips")
        .add_batch_definition_whole_dataframe("whole_table")
    )
    suite = context.suites.add(_build_suite(cfg))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="curated_clips_gate", data=batch, suite=suite)
    )
    return validation.run(batch_parameters={"dataframe": df}, result_format="SUMMARY").to_json_dict()


def _describe_failure(result: Mapping[str, Any], missing: set[str]) -> str | None:
    """A readable reason for one failed GE expectation (None: already said by a missing column)."""
    config = result["expectation_config"]
    kind, kwargs, observed = config["type"], config["kwargs"], result.get("result") or {}
    column = kwargs.get("column")
    examples = observed.get("partial_unexpected_list", [])[:3]
    count = observed.get("unexpected_count")
    if kind == "expect_column_to_exist":
        return f"required column '{column}' is missing"
    if column in missing:
        return None
    error = _exception_message(result.get("exception_info"))
    if error is not None:
        return f"{kind} on '{column}' could not run: {error}"
    if kind == "expect_table_row_count_to_be_between":
        return f"{observed.get('observed_value')} clips, fewer than min_clips {kwargs.get('min_value')}"
    if kind == "expect_column_values_to_be_in_type_list":
        if "observed_value" in observed:
            return (
                f"column '{column}' has type {observed['observed_value']}, expected {kwargs.get('type_list')}"
            )
        return f"column '{column}': {count} values not of types {kwargs.get('type_list')}, e.g. {examples}"
    what = {
        "expect_column_values_to_not_be_null": "null values",
        "expect_column_values_to_be_unique": "duplicate values",
        "expect_column_values_to_be_in_set": f"values outside {kwargs.get('value_set')}",
        "expect_column_values_to_be_between": f"values outside {_interval(kwargs)}",
    }.get(kind, f"values failing {kind}")
    return f"column '{column}': {count} {what}, e.g. {examples}"


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """The first line of the error behind a result, if any: GE reports it flat or keyed by metric."""
    if not info:
        return None
    if "raised_exception" in info:
        if not info["raised_exception"]:
            return None
        messages = [info.get("exception_message")]
    else:
        messages = [value.get("exception_message") for value in info.values() if isinstance(value, dict)]
    first = next((str(message) for message in messages if message), None)
    return first.splitlines()[0] if first else "unknown error"


def _interval(kwargs: Mapping[str, Any]) -> str:
    """``(0, inf)`` / ``[0, 1]`` from a between-expectation's arguments."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    left = "(" if kwargs.get("strict_min") or low is None else "["
    right = ")" if kwargs.get("strict_max") or high is None else "]"
    return f"{left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"


def _check(
    name: str, success: bool, observed: Any, expected: Any, reason: str, causes: Sequence[str] = ()
) -> dict[str, Any]:
    """One own check's entry in the report; ``causes`` say what made the observed value, pass or fail."""
    reason_or_none = None if success else reason
    if reason_or_none is not None and causes:
        reason_or_none += ": " + "; ".join(causes)
    return {
        "check": name,
        "success": success,
        "observed": observed,
        "expected": expected,
        "reason": reason_or_none,
        "causes": list(causes),
    }


def _share_causes(stats: Mapping[str, Any], status: str, count: int, single: str) -> list[str]:
    """What made ``count`` clips corrupt or missing: each whole part that failed (its reason and how many
    selected clips it held), then the clips that failed one by one."""
    causes = []
    in_parts = 0
    for part, problem in sorted((stats.get("part_problems") or {}).items()):
        if problem["status"] == status:
            causes.append(f"zip part {part}: {problem['reason']} ({problem['clips']} clips)")
            in_parts += int(problem["clips"])
    if count > in_parts:
        causes.append(f"{count - in_parts} clips {single}")
    return causes


def _extraction_checks(stats: Mapping[str, Any], cfg: GateConfig) -> list[dict[str, Any]]:
    """Corrupt share (of the clips read) and missing share (of the clips selected), with their causes."""
    corrupt, attempted = int(stats.get("corrupt", 0)), int(stats.get("attempted", 0))
    share = corrupt / attempted if attempted else 0.0  # nothing attempted: min_clips speaks for that
    limit = cfg.max_corrupt_share
    reason = f"corrupt share {share:.2f} ({corrupt}/{attempted} clips) above {limit:.2f}"
    causes = _share_causes(stats, "corrupt", corrupt, "did not decode (see the extraction report)")
    checks = [_check("corrupt_share", share <= limit, round(share, 4), limit, reason, causes)]
    missing = int(stats.get("missing", 0))
    selected = attempted + missing
    share = missing / selected if selected else 0.0
    limit = cfg.max_missing_share
    reason = f"missing share {share:.2f} ({missing}/{selected} clips) above {limit:.2f}"
    causes = _share_causes(stats, "missing", missing, "not members of any part they are mapped to")
    checks.append(_check("clips_missing", share <= limit, round(share, 4), limit, reason, causes))
    return checks


def _control_character_check(df: pd.DataFrame) -> dict[str, Any]:
    """Text the tables cannot hold (PostgreSQL refuses NUL) or nobody should: control characters."""
    found = {}
    for column in ("video", "source_video_id", "caption", "caption_norm", "part", "video_path"):
        if column in df.columns:
            bad = [
                str(v) for v, text in zip(df["video"], df[column], strict=True) if has_control_character(text)
            ]
            if bad:
                found[column] = bad
    reason = "control characters in " + "; ".join(
        f"column '{column}' of {len(videos)} clips, e.g. {videos[:3]!r}" for column, videos in found.items()
    )
    counts = {column: len(videos) for column, videos in found.items()}
    return _check("no_control_characters", not found, counts, {}, reason)


def _own_checks(
    df: pd.DataFrame, stats: Mapping[str, Any], cfg: GateConfig, split_cfg: SplitConfig
) -> list[dict[str, Any]]:
    """Checks beyond single columns: tags, split shares and overlap, control characters, corrupt and
    missing shares, source columns."""
    checks: list[dict[str, Any]] = []
    if "tags" in df.columns:
        bad_tags = int(sum(not _is_string_array(value) for value in df["tags"]))
        reason = f"column 'tags': {bad_tags} values are not arrays of strings"
        checks.append(_check("tags_are_string_arrays", bad_tags == 0, bad_tags, 0, reason))
    if "split" in df.columns:
        targets = {"train": split_cfg.train, "val": split_cfg.val, "test": split_cfg.test}
        for name, share in split_shares(df).items():
            ok = abs(share - targets[name]) <= split_cfg.tolerance
            reason = f"split '{name}' share {share:.2f} outside {targets[name]:.2f}±{split_cfg.tolerance:.2f}"
            checks.append(_check(f"split_share_{name}", ok, round(share, 4), targets[name], reason))
        if {"caption_norm", "source_video_id"} <= set(df.columns):
            overlap = split_overlap(df)
            shared = [
                f"{count} {key} values shared by {pair}"
                for key, pairs in overlap.items()
                for pair, count in pairs.items()
                if count
            ]
            reason = "split overlap: " + "; ".join(shared)
            checks.append(_check("split_overlap_zero", not shared, overlap, 0, reason))
    if "video" in df.columns:
        checks.append(_control_character_check(df))
    checks += _extraction_checks(stats, cfg)
    source_missing = list(stats.get("missing_columns") or [])
    reason = f"source CSV lacks columns {source_missing}"
    checks.append(_check("source_columns_present", not source_missing, source_missing, [], reason))
    return checks


def _is_string_array(value: Any) -> bool:
    """A list, tuple or numpy array of strings (parquet lists come back as numpy arrays)."""
    if isinstance(value, str) or not hasattr(value, "__iter__") or not hasattr(value, "__len__"):
        return False
    return all(isinstance(item, str) for item in value)


def validate_curated(
    df: pd.DataFrame, stats: Mapping[str, Any], cfg: GateConfig, split_cfg: SplitConfig
) -> GateResult:
    """Run the gate. ``stats``: ``corrupt``, ``attempted`` (decoded or corrupt) and ``missing`` clip
    counts and the ``part_problems`` from extraction, optionally the curation report's
    ``missing_columns``; anything else in it is copied into the report."""
    missing = {column for column in SCHEMA if column not in df.columns}
    expectations = _run_expectations(df, cfg)
    failures = sorted(
        reason
        for result in expectations["results"]
        if not result["success"] and (reason := _describe_failure(result, missing)) is not None
    )
    checks = _own_checks(df, stats, cfg, split_cfg)
    failures += [check["reason"] for check in checks if not check["success"]]
    success = bool(expectations["success"]) and all(check["success"] for check in checks)
    report = {
        "success": success,
        "rows": len(df),
        "failures": failures,
        "checks": checks,
        "stats": json.loads(json.dumps(dict(stats), default=str)),
        "great_expectations": expectations,
    }
    return GateResult(success=success, report=report, failures=failures)


def write_report(result: GateResult, path: str | os.PathLike[str]) -> Path:
    """Store the report as JSON (parents created); returns the path so the caller can log it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result.report, indent=2, sort_keys=True, default=str))
    return target


def failure_summary(failures: Sequence[str]) -> str:
    """One line for logs and task errors."""
    if not failures:
        return "quality gate passed"
    return f"quality gate failed ({len(failures)}): " + "; ".join(failures)
