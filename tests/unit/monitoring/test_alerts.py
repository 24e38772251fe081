"""The alert rules on the numbers they judge (no services): which windows breach, and which do not.

Recording once per window needs PostgreSQL; tests/integration/test_monitor.py provokes each kind there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adfame.contracts import QUALITY_FLICKER, QUALITY_MOTION, QUALITY_TEMPORAL_CONSISTENCY
from adfame.repositories.monitoring import DriftReportRow, RouteOutcomes
from adfame.settings import Settings
from monitoring import alerts

THRESHOLDS = alerts.AlertThresholds(
    window_s=60,
    min_requests=10,
    p95_latency_s=5.0,
    max_error_rate=0.1,
    quality_drop=0.1,
    quality_trailing_s=3600,
)


def _outcome(route: str, requests: int, failed: int = 0, p95: float | None = 1.0) -> RouteOutcomes:
    return RouteOutcomes(route, "7" if route == "challenger" else "3", requests, failed, p95)


def test_latency_breaches_only_above_the_threshold_with_enough_requests() -> None:
    outcomes = [_outcome("champion", 50, p95=4.9), _outcome("challenger", 12, p95=8.0)]
    breaches = alerts.latency_breaches(outcomes, THRESHOLDS)
    assert [(b.kind, b.subject) for b in breaches] == [("latency", "challenger/7")]
    assert breaches[0].details["p95_total_s"] == 8.0
    # The same slow p95 over fewer requests than the minimum is no evidence yet.
    assert alerts.latency_breaches([_outcome("challenger", 9, p95=80.0)], THRESHOLDS) == []
    # A window of only failures has no latency.
    assert alerts.latency_breaches([_outcome("challenger", 20, failed=20, p95=None)], THRESHOLDS) == []


def test_error_rate_breaches_above_the_share() -> None:
    outcomes = [_outcome("champion", 100, failed=10), _outcome("challenger", 20, failed=3)]
    breaches = alerts.error_rate_breaches(outcomes, THRESHOLDS)
    assert [b.subject for b in breaches] == ["challenger/7"]  # 10% is not above 10%; 15% is
    assert breaches[0].details["error_rate"] == pytest.approx(0.15)


def test_quality_drop_is_direction_aware_against_the_champions_trailing_mean() -> None:
    trailing = {QUALITY_TEMPORAL_CONSISTENCY: 0.9, QUALITY_FLICKER: 2.0, QUALITY_MOTION: 5.0}
    current = {
        "3": {QUALITY_TEMPORAL_CONSISTENCY: 0.88, QUALITY_FLICKER: 2.1, QUALITY_MOTION: 50.0},  # all within
        "7": {QUALITY_TEMPORAL_CONSISTENCY: 0.95, QUALITY_FLICKER: 3.0},  # smoother, but flickers 50% more
        "8": {QUALITY_TEMPORAL_CONSISTENCY: 0.7, QUALITY_FLICKER: 1.0},  # less consistent, flickers less
    }
    breaches = alerts.quality_breaches(current, trailing, THRESHOLDS)
    assert [b.subject for b in breaches] == [f"7/{QUALITY_FLICKER}", f"8/{QUALITY_TEMPORAL_CONSISTENCY}"]
    assert breaches[0].details["worse_by"] == pytest.approx(0.5)
    assert breaches[1].details["worse_by"] == pytest.approx(0.2 / 0.9)


def test_flicker_near_zero_is_judged_against_at_least_one_luma_level() -> None:
    # 0.05 -> 0.09 is +80% relative, but 0.04 of one luma level: invisible, so no alert.
    assert alerts.quality_worse_by(QUALITY_FLICKER, 0.09, 0.05) == pytest.approx(0.04)
    assert alerts.quality_breaches({"7": {QUALITY_FLICKER: 0.09}}, {QUALITY_FLICKER: 0.05}, THRESHOLDS) == []


def test_drift_breach_only_for_a_drifted_report() -> None:
    end = datetime(2030, 1, 1, tzinfo=UTC)
    details = {"p_value": 0.002, "alpha": 0.01, "summary": {"n_live": 30}}
    report = DriftReportRow(end - timedelta(hours=1), end, "snapshot-1", 0.08, 0.01, True, details)
    breach = alerts.drift_breach(report)
    assert breach is not None and breach.kind == "drift" and breach.subject == "prompts/snapshot-1"
    assert breach.details["n_live"] == 30 and breach.details["mmd2"] == 0.08 and "p=0.002" in breach.message
    assert (
        alerts.drift_breach(DriftReportRow(report.window_start, end, "snapshot-1", 0.4, 0.01, False, {}))
        is None
    )


def test_champion_version_prefers_the_champion_route_then_base() -> None:
    assert alerts.champion_version([_outcome("challenger", 5), _outcome("champion", 5)]) == "3"
    assert alerts.champion_version([RouteOutcomes("base", "base", 5, 0, 1.0)]) == "base"
    assert alerts.champion_version([_outcome("challenger", 5)]) is None


def test_bad_alerts_are_refused_with_what_was_wrong() -> None:
    with pytest.raises(alerts.UnknownAlertKind, match="'slowness'"):
        alerts.record_alert(None, "slowness", "x", "m", {}, 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="subject"):
        alerts.record_alert(None, "latency", "", "m", {}, 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1 second"):
        alerts.record_alert(None, "latency", "x", "m", {}, 0)  # type: ignore[arg-type]


def test_thresholds_come_from_the_settings() -> None:
    settings = Settings(alert_window_s=120, alert_p95_latency_s=3.5, alert_max_error_rate=0.2)
    thresholds = alerts.AlertThresholds.from_settings(settings)
    assert (thresholds.window_s, thresholds.p95_latency_s, thresholds.max_error_rate) == (120, 3.5, 0.2)
