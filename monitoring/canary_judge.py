"""Judge a canary window: the challenger against the champion over the same stretch of time.

Each step of ``canary_rollout`` holds the challenger's weight for ``canary_window_s`` seconds and then
asks ``judge_window`` whether it may go on. The numbers come from what served real requests:
``generation_requests`` (requests, failures, latency; ``adfame.repositories.monitoring.route_outcomes``)
and the sampled quality in ``monitoring_metrics`` (``metric_values``). ``compare`` is the rule itself, a
pure function of the two routes' windows and the thresholds from settings (docs/canary.md#judging):

- fewer than ``canary_min_requests`` challenger requests: inconclusive, never a pass;
- the challenger's error rate above ``canary_max_error_rate``: fail;
- its p95 latency above ``canary_max_latency_ratio`` times the champion's: fail;
- a quality metric worse than the champion's by more than ``1 - canary_min_quality_ratio`` of it
  (direction-aware: ``monitoring.alerts.quality_worse_by``), with at least ``canary_min_quality_samples``
  sampled requests of each route and a one-sided Welch test finding it worse at
  ``canary_quality_alpha``: fail. Why the test: each request has its own prompt, and a few requests'
  means differ by far more than 10 % between two equal models (a canary of the champion's own files
  was once rolled back for "flicker 50 % worse" over 13 and 4 requests).

Latency is the worker's ``timings.total_s`` of succeeded requests (received -> ready), not finished minus
submitted: both routes share one queue, so queueing says nothing about a version, and it would swamp the
difference between versions whenever traffic backs up. Failed requests end early and would flatter it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from scipy import stats
from sqlalchemy import Engine

from adfame.contracts import (
    BASE_MODEL_VERSION,
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    QUALITY_HIGHER_IS_BETTER,
    served_version_label,
)
from adfame.repositories.deployments import live_deployment
from adfame.repositories.monitoring import RouteOutcomes, metric_values, route_outcomes
from adfame.settings import Settings
from monitoring.alerts import quality_worse_by
from monitoring.rollout import NoLiveCanary

Outcome = Literal["passed", "failed", "inconclusive"]
CHAMPION_ROUTES = (CHAMPION_ALIAS, "base")  # with no champion version, the base model serves its share


@dataclass
class RouteWindow:
    """One route's requests in the window: what served them and how it went."""

    route: str
    model_version: str  # as generation_requests records it: <model>/<version>, or base
    requests: int
    failed: int
    error_rate: float
    p95_latency_s: float | None  # None: no succeeded request
    quality_values: dict[str, list[float]] = field(
        default_factory=dict
    )  # metric -> one value a sampled request

    @property
    def quality(self) -> dict[str, float]:
        """Each sampled quality metric's mean over the window."""
        return {name: float(np.mean(values)) for name, values in self.quality_values.items() if values}


@dataclass
class Verdict:
    """The window's judgement: ``passed`` only when conclusive and within every threshold.

    ``reasons`` say why it failed or was inconclusive; ``notes`` what could not be compared.
    """

    passed: bool
    reasons: list[str]
    challenger: RouteWindow
    champion: RouteWindow
    inconclusive: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        return "inconclusive" if self.inconclusive else "passed" if self.passed else "failed"


@dataclass(frozen=True)
class Thresholds:
    """What a window must show to pass (from settings)."""

    min_requests: int
    max_latency_ratio: float
    max_error_rate: float
    min_quality_ratio: float
    min_quality_samples: int = 10
    quality_alpha: float = 0.01

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.canary_min_requests,
            settings.canary_max_latency_ratio,
            settings.canary_max_error_rate,
            settings.canary_min_quality_ratio,
            settings.canary_min_quality_samples,
            settings.canary_quality_alpha,
        )


def _latency_reason(challenger: RouteWindow, champion: RouteWindow, limit: float) -> str | None:
    ours, theirs = challenger.p95_latency_s, champion.p95_latency_s
    if ours is None or theirs is None or theirs <= 0:
        return None
    ratio = ours / theirs
    if ratio <= limit:
        return None
    return f"p95 latency {ratio:.1f}x the champion's (limit {limit:g}x): {ours:.2f} s against {theirs:.2f} s"


def worse_p_value(name: str, ours: list[float], theirs: list[float]) -> float:
    """One-sided Welch test: how likely a difference this large in the bad direction of ``name`` is
    between two samples of one model (requests differ in prompt, so their values spread widely)."""
    alternative = "less" if QUALITY_HIGHER_IS_BETTER[name] else "greater"
    result = stats.ttest_ind(ours, theirs, equal_var=False, alternative=alternative)
    return 1.0 if np.isnan(result.pvalue) else float(result.pvalue)


def _quality_findings(
    challenger: RouteWindow, champion: RouteWindow, limits: Thresholds
) -> tuple[list[str], list[str]]:
    """(reasons, notes): a metric fails when the challenger's mean is worse by more than the tolerance
    and the Welch test finds it worse at ``quality_alpha``, each route having enough sampled requests."""
    tolerance, reasons, notes = 1.0 - limits.min_quality_ratio, [], []
    names = set(challenger.quality_values) & set(champion.quality_values) & set(QUALITY_HIGHER_IS_BETTER)
    for name in sorted(names):
        ours, theirs = challenger.quality_values[name], champion.quality_values[name]
        if min(len(ours), len(theirs)) < limits.min_quality_samples:
            notes.append(
                f"{name} not compared: {len(ours)} and {len(theirs)} sampled requests"
                f" (at least {limits.min_quality_samples} of each route needed)"
            )
            continue
        mean_ours, mean_theirs = float(np.mean(ours)), float(np.mean(theirs))
        worse = quality_worse_by(name, mean_ours, mean_theirs)
        if worse <= tolerance:
            continue
        p = worse_p_value(name, ours, theirs)
        better = "higher" if QUALITY_HIGHER_IS_BETTER[name] else "lower"
        finding = (
            f"{name} {mean_ours:.4g} is {worse:.0%} worse than the champion's {mean_theirs:.4g}"
            f" (limit {tolerance:.0%}; {better} is better;"
            f" p={p:.2g} over {len(ours)} and {len(theirs)} requests)"
        )
        if p < limits.quality_alpha:
            reasons.append(finding)
        else:
            notes.append(f"{finding}: within the noise, not a breach")
    return reasons, notes


def _notes(challenger: RouteWindow, champion: RouteWindow) -> list[str]:
    notes = []
    if champion.requests == 0:
        notes.append("the champion served no request in the window: latency and quality not compared")
    elif challenger.p95_latency_s is None or champion.p95_latency_s is None:
        notes.append("latency not compared: a route has no succeeded request in the window")
    if not set(challenger.quality_values) & set(champion.quality_values) & set(QUALITY_HIGHER_IS_BETTER):
        notes.append("quality not compared: no sampled quality of both routes in the window")
    return notes


def compare(challenger: RouteWindow, champion: RouteWindow, thresholds: Thresholds) -> Verdict:
    """The rule (see the module docstring); a pure function, so it is tested without services."""
    if challenger.requests < thresholds.min_requests:
        reason = (
            f"only {challenger.requests} challenger requests in the window"
            f" (at least {thresholds.min_requests} needed to judge)"
        )
        return Verdict(False, [reason], challenger, champion, inconclusive=True)
    reasons = []
    if challenger.error_rate > thresholds.max_error_rate:
        reasons.append(
            f"error rate {challenger.error_rate:.1%} above the limit {thresholds.max_error_rate:.1%}"
            f" ({challenger.failed} of {challenger.requests} failed; champion {champion.error_rate:.1%})"
        )
    latency = _latency_reason(challenger, champion, thresholds.max_latency_ratio)
    reasons += [latency] if latency else []
    quality_reasons, quality_notes = _quality_findings(challenger, champion, thresholds)
    reasons += quality_reasons
    notes = _notes(challenger, champion) + quality_notes
    return Verdict(not reasons, reasons, challenger, champion, notes=notes)


def route_window(
    route: str, label: str, outcomes: list[RouteOutcomes], quality: dict[str, list[float]]
) -> RouteWindow:
    """The window of the version ``label`` on its route(s); zero requests when it served none.

    ``outcomes`` are grouped by route and version, so one version's window is one group, or none.
    """
    (mine,) = [o for o in outcomes if o.model_version == label] or [RouteOutcomes(route, label, 0, 0, None)]
    return RouteWindow(route, label, mine.requests, mine.failed, mine.error_rate, mine.p95_total_s, quality)


def _window(engine: Engine, route: str, label: str, start: datetime, end: datetime) -> RouteWindow:
    routes = CHAMPION_ROUTES if route == CHAMPION_ALIAS else (route,)
    outcomes = [o for o in route_outcomes(engine, start, end) if o.route in routes]
    quality = metric_values(engine, label, list(QUALITY_HIGHER_IS_BETTER), start, end)
    return route_window(route, label, outcomes, quality)


def judge_window(settings: Settings, engine: Engine, start: datetime, end: datetime) -> Verdict:
    """Judge the live canary of ``settings.registered_model`` over ``[start, end)`` (finish times).

    The challenger is the live canary row's version on route ``challenger``; the champion the live
    champion row's version (or the base model) on the champion's routes. When the champion served nothing
    in the window (the challenger at 100 %), it is taken from the window of the same length before.
    """
    name = settings.registered_model
    with engine.connect() as conn:
        canary = live_deployment(conn, name, CHALLENGER_ALIAS)
        champion_row = live_deployment(conn, name, CHAMPION_ALIAS)
    if canary is None:
        raise NoLiveCanary(f"no live canary of {name} to judge")
    champion_label = (
        served_version_label(name, champion_row.model_version) if champion_row else BASE_MODEL_VERSION
    )
    challenger = _window(
        engine, CHALLENGER_ALIAS, served_version_label(name, canary.model_version), start, end
    )
    champion = _window(engine, CHAMPION_ALIAS, champion_label, start, end)
    earlier = champion.requests == 0
    if earlier:
        champion = _window(engine, CHAMPION_ALIAS, champion_label, start - (end - start), start)
    verdict = compare(challenger, champion, Thresholds.from_settings(settings))
    if earlier:
        verdict.notes.insert(0, "the champion served nothing in the window: compared with the window before")
    return verdict
