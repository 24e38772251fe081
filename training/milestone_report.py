"""What became of a milestone's retrain: its DAG run, the version it registered, the gate, the scores.

Why: after a batch of picks, a marketer running `make demo` and an operator on call ask the same
question: did the last 200 picks make a model, and is it any better? The answer lives in three places
(the milestone row in PostgreSQL, the DAG run in Airflow, the version's tags in MLflow); this module
reads them, waiting for the run when asked to. ``adfame retrain show [--milestone N] [--wait]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adfame.airflow_client import AirflowClient
from adfame.repositories.selections import MilestoneRow, milestone_row
from adfame.settings import Settings
from adfame.waiting import WaitTimeout, wait_for
from training.registry import LineageTag, milestone_version


class MilestoneUnknown(LookupError):
    """No such milestone (or none yet), or Airflow has not accepted its run."""


@dataclass(frozen=True)
class MilestoneReport:
    """A milestone's retrain as far as it got."""

    row: MilestoneRow
    run_state: str
    version: str | None = None  # name/number, None until registered
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def milestone_report(
    settings: Settings, engine: Any, mlflow_client: Any, milestone: int | None = None, wait_s: float = 0
) -> MilestoneReport:
    """The report of ``milestone`` (the latest when None); with ``wait_s``, after its run has finished
    (waiting first, within the same time, for Airflow to accept the run the milestone triggers)."""
    row = _accepted(engine, milestone, wait_s)
    with AirflowClient(settings) as airflow:
        if wait_s > 0:
            run = airflow.wait_for_dag_run(row.dag_id, row.dag_run_id, timeout_s=wait_s)
        else:
            run = airflow.get_dag_run(row.dag_id, row.dag_run_id) or {"state": "missing"}
    version = milestone_version(mlflow_client, settings.registered_model, row.milestone)
    if version is None:
        return MilestoneReport(row, run["state"])
    return MilestoneReport(
        row,
        run["state"],
        version=f"{version.name}/{version.version}",
        aliases=list(version.aliases),
        tags=dict(version.tags),
    )


def _accepted(engine: Any, milestone: int | None, wait_s: float) -> MilestoneRow:
    """The milestone's row once Airflow has accepted its run; MilestoneUnknown when it has not (yet)."""
    try:
        row = wait_for(
            lambda: milestone_row(engine, milestone),
            what=f"the run of milestone {milestone or '(latest)'} accepted by Airflow",
            timeout_s=wait_s,
            interval_s=2,
            done=lambda found: found is not None and found.dag_run_id is not None,
        )
    except WaitTimeout as timeout:
        row = timeout.last
    if row is None:
        raise MilestoneUnknown(f"no retrain milestone {milestone or ''} yet".replace("  ", " "))
    if row.dag_run_id is None:
        raise MilestoneUnknown(
            f"milestone {row.milestone}: Airflow has not accepted its run yet"
            + (f" (last error: {row.last_error})" if row.last_error else "")
        )
    return row


def format_report(report: MilestoneReport, settings: Settings) -> str:
    """Lines for a terminal: the run, the version with its gate and alias, the evaluation's numbers."""
    row = report.row
    lines = [
        f"milestone {row.milestone} ({row.selection_count} selections): {row.dag_id} run {row.dag_run_id}"
        f" {report.run_state}  {settings.airflow_url}/dags/{row.dag_id}/runs/{row.dag_run_id}"
    ]
    if report.version is None:
        lines.append("  no model version registered for it (yet)")
        return "\n".join(lines)
    tag = report.tags.get
    aliases = ", ".join(report.aliases) or "no alias"
    lines.append(f"  version {report.version} ({aliases}); gate {tag(LineageTag.GATE, '?')}")
    if reasons := tag(LineageTag.GATE_FAILED):
        lines.append(f"  gate failed: {reasons}")
    lines.append(
        f"  trained by run {tag(LineageTag.TRAINING_RUN, '?')} ({tag(LineageTag.OBJECTIVE, '?')})"
        f" on selections {tag(LineageTag.SELECTION_RANGE, '?')}, export {tag(LineageTag.EXPORT_URI, '?')}"
    )
    prefix = str(LineageTag.EVAL_PREFIX)
    scores = {k.removeprefix(prefix): v for k, v in report.tags.items() if k.startswith(prefix)}
    for name in sorted(scores):
        lines.append(f"    {name:<48} {scores[name]}")
    lines.append(f"  review it in MLflow: {settings.mlflow_url}/#/models/{settings.registered_model}")
    return "\n".join(lines)
