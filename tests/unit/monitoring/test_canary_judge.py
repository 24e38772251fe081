"""The canary judge's rule on hand-made windows: each threshold fails on its own, with a readable reason.

The rule is a pure function of two routes' windows (``compare``); tests/integration/test_rollout.py judges
a window of real rows.
"""

from __future__ import annotations

from adfame.contracts import QUALITY_FLICKER, QUALITY_MOTION, QUALITY_TEMPORAL_CONSISTENCY
from adfame.repositories.monitoring import RouteOutcomes
from adfame.settings import Settings
from monitoring.canary_judge import RouteWindow, Thresholds, compare, route_window

LIMITS = Thresholds(
    min_requests=20,
    max_latency_ratio=1.5,
    max_error_rate=0.05,
    min_quality_ratio=0.9,
    min_quality_samples=10,
    quality_alpha=0.01,
)
GOOD_QUALITY = {QUALITY_TEMPORAL_CONSISTENCY: 0.95, QUALITY_FLICKER: 2.0}
SPREAD = (-0.02, -0.01, 0.0, 0.01, 0.02) * 3  # 15 sampled requests, a small spread around each mean


def sampled(means: dict[str, float], spread: tuple[float, ...] = SPREAD) -> dict[str, list[float]]:
    """Per-request values around each mean (a relative spread), as the quality sampler stores them."""
    return {name: [mean * (1 + d) for d in spread] for name, mean in means.items()}


def window(
    route: str = "challenger",
    requests: int = 40,
    failed: int = 0,
    p95: float | None = 1.0,
    quality: dict[str, float] | None = None,
) -> RouteWindow:
    label = "adfame-wan-lora/7" if route == "challenger" else "adfame-wan-lora/6"
    rate = failed / requests if requests else 0.0
    return RouteWindow(
        route, label, requests, failed, rate, p95, sampled(GOOD_QUALITY if quality is None else quality)
    )


CHAMPION = window("champion", requests=400)


def test_a_challenger_like_the_champion_passes() -> None:
    verdict = compare(window(p95=1.2), CHAMPION, LIMITS)
    assert (verdict.passed, verdict.outcome, verdict.reasons, verdict.notes) == (True, "passed", [], [])


def test_too_few_challenger_requests_is_inconclusive_not_a_pass() -> None:
    verdict = compare(window(requests=19, failed=19), CHAMPION, LIMITS)
    assert (verdict.passed, verdict.inconclusive, verdict.outcome) == (False, True, "inconclusive")
    assert verdict.reasons == ["only 19 challenger requests in the window (at least 20 needed to judge)"]
    assert compare(window(requests=20), CHAMPION, LIMITS).outcome == "passed"


def test_latency_beyond_the_ratio_fails_with_the_ratio_in_the_reason() -> None:
    verdict = compare(window(p95=2.3), CHAMPION, LIMITS)
    assert verdict.outcome == "failed"
    assert verdict.reasons == ["p95 latency 2.3x the champion's (limit 1.5x): 2.30 s against 1.00 s"]
    assert compare(window(p95=1.5), CHAMPION, LIMITS).passed  # at the limit is within it


def test_an_error_rate_above_the_limit_fails() -> None:
    verdict = compare(window(requests=40, failed=3), CHAMPION, LIMITS)
    assert verdict.reasons == ["error rate 7.5% above the limit 5.0% (3 of 40 failed; champion 0.0%)"]
    assert compare(window(requests=40, failed=2), CHAMPION, LIMITS).passed  # 5.0 % is the limit


def test_quality_is_judged_in_each_metrics_own_direction() -> None:
    lower_consistency = window(quality={QUALITY_TEMPORAL_CONSISTENCY: 0.80, QUALITY_FLICKER: 2.0})
    (reason,) = compare(lower_consistency, CHAMPION, LIMITS).reasons
    assert reason.startswith(
        "quality.temporal_consistency 0.8 is 16% worse than the champion's 0.95 (limit 10%; higher is better;"
    )
    assert reason.endswith("over 15 and 15 requests)")
    more_flicker = window(quality={QUALITY_TEMPORAL_CONSISTENCY: 0.95, QUALITY_FLICKER: 3.0})
    (reason,) = compare(more_flicker, CHAMPION, LIMITS).reasons
    assert reason.startswith("quality.flicker 3 is 50% worse") and "lower is better; p=" in reason
    less_flicker = window(quality={QUALITY_TEMPORAL_CONSISTENCY: 0.99, QUALITY_FLICKER: 0.5})
    assert compare(less_flicker, CHAMPION, LIMITS).passed
    motion_only = window(quality={**GOOD_QUALITY, QUALITY_MOTION: 100.0})  # reported, never judged
    assert compare(motion_only, CHAMPION, LIMITS).passed


def test_every_breach_is_listed_and_missing_comparisons_are_noted() -> None:
    bad = window(requests=40, failed=10, p95=5.0, quality={QUALITY_TEMPORAL_CONSISTENCY: 0.5})
    verdict = compare(bad, CHAMPION, LIMITS)
    assert [r.split()[0] for r in verdict.reasons] == ["error", "p95", "quality.temporal_consistency"]
    idle = window("champion", requests=0, p95=None, quality={})
    verdict = compare(window(), idle, LIMITS)
    assert verdict.passed
    assert verdict.notes == [
        "the champion served no request in the window: latency and quality not compared",
        "quality not compared: no sampled quality of both routes in the window",
    ]


def test_a_route_window_is_its_versions_group_or_empty() -> None:
    outcomes = [
        RouteOutcomes("challenger", "m/7", 30, 3, 1.7),
        RouteOutcomes("challenger", "m/5", 9, 0, 0.9),  # an earlier canary's stragglers
    ]
    assert route_window("challenger", "m/7", outcomes, {}) == RouteWindow(
        "challenger", "m/7", 30, 3, 0.1, 1.7, {}
    )
    assert route_window("champion", "base", outcomes, {}) == RouteWindow(
        "champion", "base", 0, 0, 0.0, None, {}
    )


def test_thresholds_come_from_settings() -> None:
    settings = Settings(canary_min_requests=7, canary_max_latency_ratio=2.0)
    assert Thresholds.from_settings(settings) == Thresholds(7, 2.0, 0.05, 0.9)


def test_quality_differences_within_the_noise_or_on_few_samples_are_notes_not_breaches() -> None:
    wide = (-0.6, -0.3, 0.0, 0.3, 0.6) * 3  # requests of one model differ this much by prompt
    noisy = RouteWindow("challenger", "m/7", 40, 0, 0.0, 1.0, sampled({QUALITY_FLICKER: 2.6}, wide))
    champion = RouteWindow("champion", "m/6", 400, 0, 0.0, 1.0, sampled({QUALITY_FLICKER: 2.0}, wide))
    verdict = compare(noisy, champion, LIMITS)
    assert verdict.passed, verdict.reasons
    (note,) = verdict.notes
    assert note.startswith("quality.flicker 2.6 is 30% worse") and note.endswith(
        "within the noise, not a breach"
    )
    few = RouteWindow("challenger", "m/7", 40, 0, 0.0, 1.0, sampled({QUALITY_FLICKER: 9.0}, SPREAD[:4]))
    verdict = compare(few, CHAMPION, LIMITS)
    assert verdict.passed
    assert verdict.notes == [
        "quality.flicker not compared: 4 and 15 sampled requests (at least 10 of each route needed)"
    ]
