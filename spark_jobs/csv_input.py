"""Reading public metadata CSVs defensively: every field as a string, numbers parsed safely, bad rows named.

Public CSVs carry blanks, "n/a", "inf", negative scores and renamed headers; a job must count those rows and
go on, never crash or silently coerce them, so parsing never uses Spark's (ANSI, failing) casts or schema
inference. Files are read as RFC 4180 CSV: a quoted field may hold commas, doubled quotes and line breaks,
lines may end in CRLF and the file may start with a UTF-8 BOM. Quoted line breaks need Spark's ``multiLine``
reader, which reads each file in one task (a file is no longer split between tasks); without it a record
with a line break in its caption falls apart into fragments counted as bad rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

MISSING_FIELD = "missing_field"
UNPARSABLE_NUMBER = "unparsable_number"
NON_FINITE_NUMBER = "non_finite_number"
NEGATIVE_NUMBER = "negative_number"
FILE_NAME_COLUMN = "_file_name"
QUOTE_ESCAPE_ESCAPE = "\uffff"


def _header_key(name: str) -> str:
    return " ".join(name.strip().lower().split())


def read_csv_as_strings(
    spark: SparkSession,
    paths: str | Sequence[str],
    columns: Mapping[str, str],
    with_file_name: bool = False,
) -> tuple[DataFrame, list[str]]:
    """Read CSVs with the source's column names mapped to ours (``columns``: source name -> our name).

    Headers match ignoring case and surrounding or repeated whitespace. A missing source column becomes an
    all-null column (so its rows count as bad instead of the job failing); the missing names are returned.
    """
    reader = spark.read.options(
        header=True,
        inferSchema=False,
        quote='"',
        escape='"',
        multiLine=True,
        mode="PERMISSIVE",
        # RFC 4180 escapes a quote by doubling it and nothing else. Spark's default for the escape of
        # that escape is NUL, which makes the parser drop every NUL inside a quoted field; a
        # noncharacter, which no text holds, keeps the field as written.
        charToEscapeQuoteEscaping=QUOTE_ESCAPE_ESCAPE,
    )
    raw = reader.csv(list(paths) if not isinstance(paths, str) else paths)
    present = {_header_key(name): name for name in raw.columns}
    selected: list[Column] = []
    missing: list[str] = []
    for source_name, ours in columns.items():
        actual = present.get(_header_key(source_name))
        if actual is None:
            missing.append(source_name)
            selected.append(F.lit(None).cast("string").alias(ours))
        else:
            selected.append(raw[f"`{actual}`"].alias(ours))
    if with_file_name:
        selected.append(F.col("_metadata.file_name").alias(FILE_NAME_COLUMN))
    return raw.select(*selected), missing


def blank_to_null(column: Column) -> Column:
    """The trimmed value, or null when it is empty: a blank field is a missing one."""
    trimmed = F.trim(column)
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def _as_double(column: Column) -> Column:
    return F.trim(column).try_cast("double")


def _is_finite(value: Column) -> Column:
    return ~F.isnan(value) & (F.abs(value) != F.lit(float("inf")))


def parse_number(column: Column) -> Column:
    """A double, or null for anything that is not a finite number ("n/a", "", "NaN", "inf", "1e400")."""
    value = _as_double(column)
    return F.when(_is_finite(value), value)


def is_non_finite(column: Column) -> Column:
    """Whether the field is a number that is not finite: "inf", "-inf", "NaN", or one too large ("1e400")."""
    value = _as_double(column)
    return value.isNotNull() & ~_is_finite(value)


def bad_row_reason(
    raw: Mapping[str, Column], numbers: Mapping[str, Column], required: Sequence[str]
) -> Column:
    """The first reason a row is unusable, or null: missing field, then non-finite number (so "-inf" is
    neither "unparsable" nor "negative"), unparsable number, negative number.

    ``raw`` holds each field as read (a text field may be given cleaned, so that one holding only invisible
    characters counts as missing), ``numbers`` the parsed value of each numeric field; a row gets one reason
    so that the counts per reason add up to the number of bad rows.
    """
    missing = _any(blank_to_null(raw[name]).isNull() for name in required)
    non_finite = _any(is_non_finite(raw[name]) for name in numbers)
    unparsable = _any(
        blank_to_null(raw[name]).isNotNull() & value.isNull() for name, value in numbers.items()
    )
    negative = _any(value < 0 for value in numbers.values())
    return first_reason(
        [
            (missing, F.lit(MISSING_FIELD)),
            (non_finite, F.lit(NON_FINITE_NUMBER)),
            (unparsable, F.lit(UNPARSABLE_NUMBER)),
            (negative, F.lit(NEGATIVE_NUMBER)),
        ]
    )


def first_reason(checks: Sequence[tuple[Column, Column]]) -> Column:
    """The reason of the first check whose condition holds, or null: one reason per row, in priority order."""
    if not checks:
        return F.lit(None).cast("string")
    (first_condition, first), *rest = checks
    result = F.when(first_condition, first)
    for condition, reason in rest:
        result = result.when(condition, reason)
    return result


def _any(conditions: Iterable[Column]) -> Column:
    """OR of boolean columns, where a null condition counts as false."""
    columns = [F.coalesce(condition, F.lit(False)) for condition in conditions]
    return reduce(lambda left, right: left | right, columns, F.lit(False))


def count_by(df: DataFrame, *keys: str) -> dict[tuple[str | None, ...], int]:
    """Row counts per distinct key tuple, computed in one pass for a report."""
    return {tuple(row[key] for key in keys): row["count"] for row in df.groupBy(*keys).count().collect()}
