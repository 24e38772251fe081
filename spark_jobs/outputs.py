"""What a job over a public CSV hands back: the rows it selected and a report of where every row went.

A row is read once and ends in exactly one place: bad (see ``spark_jobs.csv_input.bad_row_reason``), dropped
for a reason of the job's own, or selected, so the report's counts add up. The pipeline stores the reports
and logs their totals; a job run alone writes both outputs where ``--out`` and ``--report`` say.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession

from spark_jobs.session import get_spark

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RowReport:
    """The counts every job has; a job's subclass adds its own drop reasons. JSON through :meth:`to_dict`."""

    rows_read: int = 0
    bad_rows: dict[str, int] = field(default_factory=dict)
    selected: int = 0
    missing_columns: list[str] = field(default_factory=list)

    @property
    def bad_rows_total(self) -> int:
        return sum(self.bad_rows.values())

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "bad_rows_total": self.bad_rows_total}

    def outcome(self) -> str:
        """Where the rows went, in a few words for the log; a job's subclass adds its own reasons."""
        return f"{self.selected} of {self.rows_read} rows selected, {self.bad_rows_total} bad"


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--out``, ``--report`` and ``--master``, which every job's command line takes after its own inputs."""
    parser.add_argument("--out", required=True, help="parquet output (overwritten)")
    parser.add_argument("--report", required=True, help="JSON report path (local)")
    parser.add_argument(
        "--master", default=None, help="Spark master (default: SPARK_MASTER, ADFAME_SPARK_MASTER or local[2])"
    )


def write_outputs(selected: DataFrame, report: RowReport, out: str, report_path: Path) -> None:
    """The selected rows as parquet and the report as sorted, indented JSON, to read and diff by hand."""
    selected.write.mode("overwrite").parquet(out)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True))


Report = TypeVar("Report", bound=RowReport)


def run_alone(
    app_name: str, args: argparse.Namespace, job: Callable[[SparkSession], tuple[DataFrame, Report]]
) -> Report:
    """What a job's ``main`` does around its own work: log to stderr, open a session on ``--master``,
    run the job and write both outputs. The session is left running: the process exit ends it, and
    tests reuse it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    selected, report = job(get_spark(app_name, args.master))
    write_outputs(selected, report, args.out, Path(args.report))
    log.info("%s: %s -> %s; report %s", app_name, report.outcome(), args.out, args.report)
    return report
