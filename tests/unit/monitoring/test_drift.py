"""The drift test's statistics on synthetic embeddings, and the prompt clusters (no model, no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from monitoring import drift
from monitoring.prompt_clusters import CLUSTER_SHARE_METRIC, cluster_name, cluster_prompts, cluster_share_rows

DIMS = 16


def _unit(points: np.ndarray) -> np.ndarray:
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _sample(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    """Points around ``centre`` on the unit sphere, like sentence embeddings of one kind of text."""
    return _unit(centre + 0.6 * rng.standard_normal((n, DIMS)))


@pytest.fixture(scope="module")
def centres() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal(DIMS), rng.standard_normal(DIMS)


def test_mmd_is_zero_for_identical_samples_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    points = _sample(rng, 30, np.ones(DIMS))
    pooled = np.concatenate([points, points])
    kernel = np.exp(-drift.squared_distances(pooled) / 2)
    mask = np.arange(60) < 30
    assert drift._mmd2(kernel, mask) == pytest.approx(0.0, abs=1e-12)
    base = np.ones(DIMS)
    shifted = [drift.mmd_permutation_test(_sample(rng, 40, base + s), _sample(rng, 40, base), 0.05, 99).mmd2
               for s in (0.0, 1.0, 3.0)]  # fmt: skip
    assert shifted[0] < shifted[1] < shifted[2]


def test_median_heuristic_is_the_median_pairwise_distance() -> None:
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])  # distances 3, 4, 5
    assert drift.median_sigma(drift.squared_distances(points)) == pytest.approx(4.0)
    assert drift.median_sigma(drift.squared_distances(np.zeros((3, 2)))) == 1.0  # all coincide


def test_same_distribution_is_rarely_flagged_and_a_shift_always(
    centres: tuple[np.ndarray, np.ndarray],
) -> None:
    home, other = centres
    rng = np.random.default_rng(2)
    alpha, windows = 0.05, 20
    same = [drift.mmd_permutation_test(_sample(rng, 30, home), _sample(rng, 60, home), alpha, 199, seed=i)
            for i in range(windows)]  # fmt: skip
    moved = [
        drift.mmd_permutation_test(
            _sample(rng, 30, 0.5 * home + 0.5 * other), _sample(rng, 60, home), alpha, 199
        )
        for _ in range(windows)
    ]
    # Under the null the p-value is uniform: P(>= 4 of 20 below 0.05) is 1.6 %, and these draws are fixed.
    assert sum(t.drifted for t in same) <= 3
    assert all(t.drifted for t in moved)
    assert all(t.n_live == 30 and t.n_reference == 60 and t.permutations == 199 for t in same + moved)


def test_score_above_the_critical_value_is_exactly_p_below_alpha(
    centres: tuple[np.ndarray, np.ndarray],
) -> None:
    home, other = centres
    rng = np.random.default_rng(3)
    for step in np.linspace(0, 0.4, 12):
        test = drift.mmd_permutation_test(
            _sample(rng, 25, (1 - step) * home + step * other), _sample(rng, 25, home), 0.05, 99
        )
        assert (test.mmd2 > test.critical_value) == test.drifted, test


def test_critical_value_needs_enough_permutations() -> None:
    with pytest.raises(ValueError, match="at least 100"):
        drift.critical_value(np.linspace(0, 1, 50), 0.01)
    # 99 permutations at alpha 0.05: p = (1 + count) / 100 < 0.05 allows at most 3 statistics at or
    # above the observed one, so it must exceed the 4th largest.
    assert drift.critical_value(np.arange(99.0), 0.05) == 95.0


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 points"):
        drift.mmd_permutation_test(np.ones((1, 4)), np.ones((5, 4)), 0.05, 99)
    with pytest.raises(ValueError, match="embedding sizes differ"):
        drift.mmd_permutation_test(np.ones((3, 4)), np.ones((3, 5)), 0.05, 99)


def test_cluster_names_are_the_most_frequent_words() -> None:
    texts = ["A red blender on a counter", "a blender crushing ice", "the blender and a toaster"]
    assert cluster_name(texts) == "blender counter crushing"
    assert cluster_name(["the a of"]) == "(empty)"


def test_clusters_split_two_kinds_of_prompt_and_name_the_new_one(
    centres: tuple[np.ndarray, np.ndarray],
) -> None:
    home, other = centres
    rng = np.random.default_rng(4)
    prompts = [f"running sneakers take {i}" for i in range(12)] + [
        f"kitchen blender take {i}" for i in range(6)
    ]
    embeddings = np.concatenate([_sample(rng, 12, home * 3), _sample(rng, 6, other * 3)])
    reference = _sample(rng, 20, home * 3)  # the captions know only sneakers
    clusters = cluster_prompts(prompts, embeddings, clusters=2, reference=reference)
    assert [(c.name.split()[0], c.size) for c in clusters] == [("running", 12), ("blender", 6)]
    assert clusters[0].reference_share == 1.0 and clusters[1].reference_share == 0.0
    assert clusters[1].share == pytest.approx(1 / 3) and len(clusters[1].examples) == 3
    end = datetime(2030, 1, 1, tzinfo=UTC)
    rows = cluster_share_rows([c.as_json() for c in clusters], end)
    assert {(r.name, r.labels["cluster"], round(r.value, 3)) for r in rows} == {
        (CLUSTER_SHARE_METRIC, clusters[0].name, 0.667),
        (CLUSTER_SHARE_METRIC, clusters[1].name, 0.333),
    }
    assert all(r.recorded_at == end for r in rows)
