"""Alerts: latency, error rate, quality drop, drift and canary rollback, each recorded once per breach window.

Why once per window: the monitor DAG looks every few minutes, and a breach that lasts is seen by every
look; operators want one alert per breach window, not one per look. An alert of a kind and subject owns
``[raised_at, raised_at + window_s)``; while that window is open, the same breach records nothing new
(``adfame.repositories.monitoring.insert_alert_once``, race-free under an advisory lock). Every new alert
is logged at WARNING. The rules are pure functions of the numbers they judge (``latency_breaches``,
``error_rate_breaches``, ``quality_breaches``, ``drift_breach``); ``evaluate_alerts`` feeds them the last
window from PostgreSQL. With ``retrain_on_alert``, a new drift or quality alert also starts
``retrain_on_feedback`` (``start_retrain``) with the conf milestones send (``adfame.schemas.RetrainConf``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from adfame.airflow_client import AirflowClient, AirflowError
from adfame.contracts import QUALITY_HIGHER_IS_BETTER
from adfame.repositories import monitoring
from adfame.repositories.monitoring import DriftReportRow, RouteOutcomes
from adfame.repositories.selections import milestone_row
from adfame.schemas import RetrainConf
from adfame.settings import Settings

log = logging.getLogger(__name__)

ALERT_KINDS = ("latency", "error_rate", "quality_drop", "drift", "canary_rollback")
RETRAIN_KINDS = ("drift", "quality_drop")
# Flicker is 0-255 and near 0 for a steady video: a relative rise is judged against at least one luma level.
_MIN_REFERENCE = 1.0


class UnknownAlertKind(ValueError):
    """An alert kind outside ``ALERT_KINDS``."""


@dataclass(frozen=True)
class Breach:
    """What a rule found: an alert to record (``kind`` of ``ALERT_KINDS``, ``subject``: what breached)."""

    kind: str
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _check(kind: str, subject: str, window_s: int) -> None:
    if kind not in ALERT_KINDS:
        raise UnknownAlertKind(f"alert kind must be one of {ALERT_KINDS}, got {kind!r}")
    if not subject:
        raise ValueError("an alert needs a subject (what breached)")
    if window_s < 1:
        raise ValueError(f"an alert's window must be at least 1 second, got {window_s}")


def record_alert_id(
    engine: Engine,
    kind: str,
    subject: str,
    message: str,
    details: dict[str, Any],
    window_s: int,
    at: datetime | None = None,
) -> int | None:
    """Like ``record_alert``, returning the new alert's id (None when one is already open)."""
    _check(kind, subject, window_s)
    alert_id = monitoring.insert_alert_once(engine, kind, subject, message, details, window_s, at)
    if alert_id is not None:
        log.warning("alert %s [%s]: %s (%s)", kind, subject, message, details)
    else:
        log.info("alert %s [%s] already recorded in its window: %s", kind, subject, message)
    return alert_id


def record_alert(
    engine: Engine,
    kind: str,
    subject: str,
    message: str,
    details: dict[str, Any],
    window_s: int,
    at: datetime | None = None,
) -> bool:
    """Record an alert once per ``window_s`` seconds per (kind, subject); True when this call recorded it.

    ``at``: when the breach was seen (default: the database's now).
    """
    return record_alert_id(engine, kind, subject, message, details, window_s, at) is not None


# ---- the rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertThresholds:
    """What counts as a breach (the ``alert_*`` settings)."""

    window_s: int
    min_requests: int
    p95_latency_s: float
    max_error_rate: float
    quality_drop: float
    quality_trailing_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertThresholds:
        return cls(
            window_s=settings.alert_window_s,
            min_requests=settings.alert_min_requests,
            p95_latency_s=settings.alert_p95_latency_s,
            max_error_rate=settings.alert_max_error_rate,
            quality_drop=settings.alert_quality_drop,
            quality_trailing_s=settings.quality_trailing_s,
        )


def route_subject(outcome: RouteOutcomes) -> str:
    """An alert's subject for a route: the route and the version serving it."""
    return f"{outcome.route}/{outcome.model_version}"


def latency_breaches(outcomes: Sequence[RouteOutcomes], thresholds: AlertThresholds) -> list[Breach]:
    """Routes whose p95 total latency exceeds the threshold, over at least ``min_requests`` requests."""
    return [
        Breach(
            "latency",
            route_subject(o),
            f"p95 latency {o.p95_total_s:.2f}s of {o.route} v{o.model_version} is above "
            f"{thresholds.p95_latency_s:.2f}s",
            {"p95_total_s": o.p95_total_s, "threshold_s": thresholds.p95_latency_s, "requests": o.requests},
        )
        for o in outcomes
        if o.requests >= thresholds.min_requests
        and o.p95_total_s is not None
        and o.p95_total_s > thresholds.p95_latency_s
    ]


def error_rate_breaches(outcomes: Sequence[RouteOutcomes], thresholds: AlertThresholds) -> list[Breach]:
    """Routes whose share of failed requests exceeds the threshold, over at least ``min_requests``."""
    return [
        Breach(
            "error_rate",
            route_subject(o),
            f"{o.failed} of {o.requests} requests of {o.route} v{o.model_version} failed "
            f"({o.error_rate:.1%} > {thresholds.max_error_rate:.1%})",
            {
                "failed": o.failed,
                "requests": o.requests,
                "error_rate": o.error_rate,
                "threshold": thresholds.max_error_rate,
            },
        )
        for o in outcomes
        if o.requests >= thresholds.min_requests and o.error_rate > thresholds.max_error_rate
    ]


def quality_worse_by(name: str, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference``, as a share of the reference (negative: better)."""
    scale = max(abs(reference), _MIN_REFERENCE) if not QUALITY_HIGHER_IS_BETTER[name] else abs(reference)
    if scale == 0:
        return 0.0
    change = (reference - value) if QUALITY_HIGHER_IS_BETTER[name] else (value - reference)
    return change / scale


def quality_breaches(
    current: dict[str, dict[str, float]], champion_trailing: dict[str, float], thresholds: AlertThresholds
) -> list[Breach]:
    """Versions (``current``: version -> metric means over the window) with a quality metric worse than the
    champion's trailing mean by more than ``quality_drop`` (a share; see ``quality_worse_by``)."""
    breaches = []
    for version, means in sorted(current.items()):
        for name in sorted(set(means) & set(champion_trailing) & set(QUALITY_HIGHER_IS_BETTER)):
            worse = quality_worse_by(name, means[name], champion_trailing[name])
            if worse > thresholds.quality_drop:
                breaches.append(
                    Breach(
                        "quality_drop",
                        f"{version}/{name}",
                        f"{name} of v{version} is {means[name]:.4f}, worse than the champion's trailing "
                        f"{champion_trailing[name]:.4f} by {worse:.1%} (> {thresholds.quality_drop:.1%})",
                        {
                            "metric": name,
                            "value": means[name],
                            "champion_trailing": champion_trailing[name],
                            "worse_by": worse,
                            "threshold": thresholds.quality_drop,
                            "model_version": version,
                        },
                    )
                )
    return breaches


def drift_breach(report: DriftReportRow) -> Breach | None:
    """The drift alert of a report that found drift, else None (``monitoring.drift``: the report's score is
    MMD^2, its threshold the permutation critical value, its details hold the p-value and alpha)."""
    if not report.drifted:
        return None
    p_value, alpha = report.details.get("p_value"), report.details.get("alpha")
    return Breach(
        "drift",
        f"prompts/{report.reference}",
        f"live prompts drifted from {report.reference}: MMD^2 {report.score:.5f} > {report.threshold:.5f} "
        f"(p={p_value}, alpha={alpha})",
        {
            "mmd2": report.score,
            "critical_value": report.threshold,
            "window_start": report.window_start.isoformat(),
            "window_end": report.window_end.isoformat(),
            **report.details.get("summary", {}),
            "clusters": report.details.get("clusters", [])[:3],
        },
    )


# ---- evaluation over the last window -------------------------------------------------------------


@dataclass(frozen=True)
class RaisedAlert:
    """A breach seen by ``evaluate_alerts``: whether it is new in its window, and the retrain it started."""

    breach: Breach
    alert_id: int | None
    retrain_run_id: str | None = None

    @property
    def recorded(self) -> bool:
        return self.alert_id is not None


def champion_version(outcomes: Sequence[RouteOutcomes]) -> str | None:
    """The version serving route ``champion`` in the window (else ``base``), None when neither served."""
    for route in ("champion", "base"):
        served = [o.model_version for o in outcomes if o.route == route]
        if served:
            return served[0]
    return None


def window_breaches(engine: Engine, thresholds: AlertThresholds, now: datetime) -> list[Breach]:
    """Latency, error-rate and quality breaches over ``[now - window_s, now)``, and drift when the latest
    drift report of the window found it."""
    start = now - timedelta(seconds=thresholds.window_s)
    outcomes = monitoring.route_outcomes(engine, start, now)
    breaches = latency_breaches(outcomes, thresholds) + error_rate_breaches(outcomes, thresholds)
    champion = champion_version(outcomes)
    if champion is not None:
        names = list(QUALITY_HIGHER_IS_BETTER)
        trailing_start = now - timedelta(seconds=thresholds.quality_trailing_s)
        trailing = monitoring.metric_means(engine, champion, names, trailing_start, now)
        versions = sorted({o.model_version for o in outcomes})
        current = {v: monitoring.metric_means(engine, v, names, start, now) for v in versions}
        breaches += quality_breaches(current, trailing, thresholds)
    reports = monitoring.drift_reports_since(engine, start)
    latest_drift = drift_breach(reports[-1]) if reports else None
    return breaches + ([latest_drift] if latest_drift else [])


def raise_alerts(
    settings: Settings,
    engine: Engine,
    breaches: Sequence[Breach],
    window_s: int,
    client_factory: Callable[[], AirflowClient] | None = None,
) -> list[RaisedAlert]:
    """Record each breach once per window; a new drift or quality alert starts a retrain when configured."""
    raised = []
    for breach in breaches:
        alert_id = record_alert_id(
            engine, breach.kind, breach.subject, breach.message, breach.details, window_s
        )
        run_id = None
        if alert_id is not None and breach.kind in RETRAIN_KINDS and settings.retrain_on_alert:
            run_id = start_retrain(
                settings, engine, alert_id, client_factory or (lambda: AirflowClient(settings))
            )
        raised.append(RaisedAlert(breach, alert_id, run_id))
    return raised


def evaluate_alerts(
    settings: Settings,
    engine: Engine,
    now: datetime | None = None,
    client_factory: Callable[[], AirflowClient] | None = None,
) -> list[RaisedAlert]:
    """Judge the last ``alert_window_s`` by the rules and record what breached (once per window)."""
    thresholds = AlertThresholds.from_settings(settings)
    breaches = window_breaches(engine, thresholds, now or datetime.now(UTC))
    return raise_alerts(settings, engine, breaches, thresholds.window_s, client_factory)


def retrain_run_id(alert_id: int) -> str:
    """The fixed run id of an alert's retrain: a repeat is refused by Airflow (409)."""
    return f"retrain_alert_{alert_id:06d}"


def start_retrain(
    settings: Settings, engine: Engine, alert_id: int, client_factory: Callable[[], AirflowClient]
) -> str | None:
    """Start ``retrain_on_feedback`` on the latest milestone for an alert; the run id, or None when there is
    no milestone yet or Airflow refused (logged: the alert stands either way)."""
    milestone = milestone_row(engine)
    if milestone is None:
        log.warning("alert %d: no retrain milestone yet, so there is no feedback to retrain on", alert_id)
        return None
    conf = RetrainConf(milestone=milestone.milestone, selection_count=milestone.selection_count)
    run_id = retrain_run_id(alert_id)
    try:
        with client_factory() as client:
            client.trigger_dag(settings.retrain_dag_id, conf=conf.model_dump(mode="json"), run_id=run_id)
    except AirflowError as exc:
        if not exc.conflict:
            log.warning("alert %d: retrain not started: %s", alert_id, exc)
            return None
    monitoring.set_alert_retrain_run(engine, alert_id, run_id)
    log.warning(
        "alert %d started %s run %s (milestone %d)",
        alert_id,
        settings.retrain_dag_id,
        run_id,
        milestone.milestone,
    )
    return run_id
