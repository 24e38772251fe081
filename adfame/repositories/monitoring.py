"""SQL of monitoring: ``monitoring_metrics``, ``drift_reports``, ``alerts`` and ``quality_samples``.

Why one module: the monitor DAG writes quality metrics, drift reports and alerts; the canary judge, the
rollback path and the dashboard read them. "The mean of a metric over a window", "an alert is recorded
once per breach window" and "a request is quality-sampled once" are each one statement here, shared by
every writer and reader. It also holds the read-only windows monitoring takes of ``generation_requests``
(the outcomes per route and version, the live prompts, the finished requests not sampled yet); the
request's own life stays in ``requests.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text


@dataclass(frozen=True)
class MetricRow:
    """One value of a named metric, for a model version (None: not tied to one), labelled.

    ``recorded_at`` None means now; the quality sampler stamps each row with the finish time of the
    request it scored, so a window of metrics lines up with the window of requests it describes.
    """

    name: str
    value: float
    labels: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    recorded_at: datetime | None = None


def _metric_params(row: MetricRow) -> dict[str, Any]:
    if not row.name:
        raise ValueError("a metric needs a name")
    return {
        "name": row.name,
        "value": float(row.value),
        "labels": json.dumps(row.labels, sort_keys=True),
        "version": row.model_version,
        "at": row.recorded_at,
    }


_INSERT_METRIC = """
insert into monitoring_metrics (name, value, labels, model_version, recorded_at)
values (:name, :value, cast(:labels as jsonb), :version, coalesce(:at, now()))
"""


def insert_metrics(conn: Connection, rows: Sequence[MetricRow]) -> None:
    """The rows in the caller's transaction (joined to what else it writes)."""
    if rows:
        conn.execute(text(_INSERT_METRIC), [_metric_params(row) for row in rows])


def record_metrics(engine: Engine, rows: Sequence[MetricRow]) -> None:
    """Insert the rows in one transaction."""
    with engine.begin() as conn:
        insert_metrics(conn, rows)


def metric_means(
    engine: Engine, model_version: str, names: Sequence[str], start: datetime, end: datetime
) -> dict[str, float]:
    """The mean of each named metric of the version over ``[start, end)``; a name with no rows is absent."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            select name, avg(value) from monitoring_metrics
            where model_version = :version and name = any(:names)
                and recorded_at >= :start and recorded_at < :end
            group by name"""),
            {"version": model_version, "names": list(names), "start": start, "end": end},
        ).all()
    return {name: float(mean) for name, mean in rows}


def metric_values(
    engine: Engine, model_version: str, names: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[float]]:
    """Every value of each named metric of the version over ``[start, end)`` (one per sampled request for
    the quality metrics), for tests that need the spread and not only the mean; absent names have none."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            select name, value from monitoring_metrics
            where model_version = :version and name = any(:names)
                and recorded_at >= :start and recorded_at < :end
            order by recorded_at, id"""),
            {"version": model_version, "names": list(names), "start": start, "end": end},
        ).all()
    values: dict[str, list[float]] = {}
    for name, value in rows:
        values.setdefault(name, []).append(float(value))
    return values


@dataclass(frozen=True)
class MetricPoint:
    """One stored metric value, as the dashboard and the tests read it back."""

    name: str
    value: float
    labels: dict[str, Any]
    model_version: str | None
    recorded_at: datetime


def metric_points(engine: Engine, name_prefix: str, since: datetime) -> list[MetricPoint]:
    """Every metric whose name starts with ``name_prefix`` recorded since ``since``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            select name, value, labels, model_version, recorded_at from monitoring_metrics
            where starts_with(name, :prefix) and recorded_at >= :since
            order by recorded_at, id"""),
            {"prefix": name_prefix, "since": since},
        ).all()
    return [MetricPoint(*row) for row in rows]


# ---- alerts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    """A recorded alert."""

    id: int
    kind: str
    subject: str
    message: str
    details: dict[str, Any]
    raised_at: datetime
    window_end: datetime
    retrain_run_id: str | None


_INSERT_ALERT_UNLESS_OPEN = """
insert into alerts (kind, subject, message, details, raised_at, window_end)
select :kind, :subject, :message, cast(:details as jsonb), t.at, t.at + make_interval(secs => :window_s)
from (select coalesce(cast(:at as timestamptz), now()) as at) t
where not exists (
    select 1 from alerts a where a.kind = :kind and a.subject = :subject
        and a.raised_at <= t.at and a.window_end > t.at)
returning id
"""


def insert_alert_once(
    engine: Engine,
    kind: str,
    subject: str,
    message: str,
    details: dict[str, Any],
    window_s: int,
    at: datetime | None = None,
) -> int | None:
    """Record the alert unless one of the same kind and subject is open at ``at`` (default: now).

    Returns the new row's id, None when an open one already covers the moment. A transaction-level
    advisory lock on (kind, subject) makes two concurrent callers record one row.
    """
    params = {
        "kind": kind,
        "subject": subject,
        "message": message,
        "details": json.dumps(details, sort_keys=True, default=str),
        "window_s": window_s,
        "at": at,
    }
    with engine.begin() as conn:
        conn.execute(
            text("select pg_advisory_xact_lock(hashtext('alerts:' || :kind || ':' || :subject))"), params
        )
        return conn.execute(text(_INSERT_ALERT_UNLESS_OPEN), params).scalar()


def set_alert_retrain_run(engine: Engine, alert_id: int, run_id: str) -> None:
    """Remember the retrain run an alert started."""
    with engine.begin() as conn:
        conn.execute(
            text("update alerts set retrain_run_id = :run where id = :id"), {"run": run_id, "id": alert_id}
        )


def alerts_since(engine: Engine, since: datetime, kind: str | None = None) -> list[AlertRow]:
    """The alerts raised since ``since`` (of one kind, when given), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select id, kind, subject, message, details, raised_at, window_end, retrain_run_id"
                " from alerts where raised_at >= :since and (cast(:kind as text) is null or kind = :kind)"
                " order by raised_at, id"
            ),
            {"since": since, "kind": kind},
        ).all()
    return [AlertRow(*row) for row in rows]


# ---- drift reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReportRow:
    """One drift check of a window of live prompts against a reference."""

    window_start: datetime
    window_end: datetime
    reference: str
    score: float
    threshold: float
    drifted: bool
    details: dict[str, Any]


def record_drift_report(engine: Engine, report: DriftReportRow) -> int:
    """Insert the report; returns its id."""
    with engine.begin() as conn:
        return conn.execute(
            text("""
            insert into drift_reports
                (window_start, window_end, reference, score, threshold, drifted, details)
            values (:start, :end, :reference, :score, :threshold, :drifted, cast(:details as jsonb))
            returning id"""),
            {
                "start": report.window_start,
                "end": report.window_end,
                "reference": report.reference,
                "score": report.score,
                "threshold": report.threshold,
                "drifted": report.drifted,
                "details": json.dumps(report.details, sort_keys=True),
            },
        ).scalar_one()


def drift_reports_since(engine: Engine, since: datetime) -> list[DriftReportRow]:
    """The drift reports whose window ended since ``since``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select window_start, window_end, reference, score, threshold, drifted, details"
                " from drift_reports where window_end >= :since order by window_end, id"
            ),
            {"since": since},
        ).all()
    return [DriftReportRow(*row) for row in rows]


# ---- read-only windows of generation_requests -----------------------------------------------------


@dataclass(frozen=True)
class RouteOutcomes:
    """The finished requests of one route and model version in a window: counts and latency."""

    route: str
    model_version: str
    requests: int
    failed: int
    p95_total_s: float | None  # over the succeeded requests' ``timings.total_s``; None without any

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


def route_outcomes(engine: Engine, start: datetime, end: datetime) -> list[RouteOutcomes]:
    """Requests finished in ``[start, end)``, per route and model version."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            select route, model_version, count(*), count(*) filter (where status = 'failed'),
                percentile_cont(0.95) within group (order by (timings->>'total_s')::float8)
                    filter (where status = 'succeeded' and timings ? 'total_s')
            from generation_requests
            where finished_at >= :start and finished_at < :end and route is not null
                and model_version is not null and status in ('succeeded', 'failed')
            group by route, model_version order by route, model_version"""),
            {"start": start, "end": end},
        ).all()
    return [RouteOutcomes(r, v, int(n), int(f), None if p is None else float(p)) for r, v, n, f, p in rows]


def prompts_between(engine: Engine, start: datetime, end: datetime, limit: int) -> list[str]:
    """The prompts submitted in ``[start, end)``, at most ``limit`` (the most recent)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "select prompt from generation_requests where submitted_at >= :start"
                    " and submitted_at < :end order by submitted_at desc limit :limit"
                ),
                {"start": start, "end": end, "limit": limit},
            ).scalars()
        )


# ---- quality samples ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedRequest:
    """A succeeded request not quality-sampled yet: what served it and its candidates' object keys."""

    request_id: uuid.UUID
    model_version: str
    route: str
    finished_at: datetime
    object_keys: list[str]


def unsampled_requests(engine: Engine, since: datetime, per_version: int) -> list[ServedRequest]:
    """Up to ``per_version`` of each version's most recent succeeded, unsampled requests since ``since``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            select request_id, model_version, route, finished_at, keys from (
                select r.request_id, r.model_version, r.route, r.finished_at,
                    array(select c.object_key from candidates c where c.request_id = r.request_id
                          order by c.candidate_index) as keys,
                    row_number() over (partition by r.model_version order by r.finished_at desc) as rank
                from generation_requests r
                where r.status = 'succeeded' and r.model_version is not null and r.finished_at >= :since
                    and not exists (select 1 from quality_samples q where q.request_id = r.request_id)
            ) ranked where rank <= :per_version order by finished_at"""),
            {"since": since, "per_version": per_version},
        ).all()
    return [ServedRequest(rid, version, route, at, list(keys)) for rid, version, route, at, keys in rows]


def record_quality_sample(
    engine: Engine, request: ServedRequest, scored: int, error: str | None, rows: Sequence[MetricRow]
) -> bool:
    """Mark the request sampled and store its metric rows, atomically; False (and nothing written) when
    another sampler marked it first, so no request is ever counted twice."""
    with engine.begin() as conn:
        marked = conn.execute(
            text("""
            insert into quality_samples (request_id, model_version, route, candidates, error)
            values (:id, :version, :route, :scored, :error) on conflict (request_id) do nothing"""),
            {
                "id": str(request.request_id),
                "version": request.model_version,
                "route": request.route,
                "scored": scored,
                "error": error,
            },
        ).rowcount
        if marked:
            insert_metrics(conn, rows)
    return bool(marked)
