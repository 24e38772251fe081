"""The pure metrics on hand-made frames and features whose right answers are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from training import metrics


def _video(values: list[int], size: int = 4) -> np.ndarray:
    """A video of flat grey frames with the given levels."""
    return np.stack([np.full((size, size, 3), v, dtype=np.uint8) for v in values])


def test_identical_frames_are_perfectly_consistent_and_do_not_flicker() -> None:
    video = _video([90] * 5)
    assert metrics.temporal_consistency(video) == metrics.TemporalConsistency(previous=1.0, first=1.0)
    assert metrics.flicker(video) == 0.0
    assert metrics.motion(video) == 0.0


def test_temporal_consistency_compares_with_the_previous_and_with_the_first_frame() -> None:
    consistency = metrics.temporal_consistency(_video([0, 255, 0, 255]))
    assert consistency.previous == pytest.approx(0.0)  # every step changes every pixel fully
    assert consistency.first == pytest.approx(1 / 3)  # frames 1 and 3 differ from frame 0, frame 2 does not


def test_a_one_frame_video_is_consistent() -> None:
    assert metrics.temporal_consistency(_video([7])) == metrics.TemporalConsistency(1.0, 1.0)
    assert metrics.flicker(_video([7])) == 0.0


def test_flicker_is_the_mean_step_of_mean_luma() -> None:
    assert metrics.flicker(_video([0, 100, 0])) == pytest.approx(100.0)
    assert metrics.mean_luminance(_video([255])) == pytest.approx(255.0)
    red = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    red[..., 0] = 255
    assert metrics.mean_luminance(red) == pytest.approx(0.299 * 255)


def test_motion_without_a_brightness_change_is_not_flicker() -> None:
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    frame[:, :2] = 255  # a bright bar that moves right one column per frame
    video = np.stack([np.roll(frame, shift, axis=1) for shift in range(4)])
    assert metrics.flicker(video) == pytest.approx(0.0)
    assert metrics.motion(video) > 10
    assert metrics.temporal_consistency(video).previous < 1.0


def test_frames_must_be_rgb_videos() -> None:
    with pytest.raises(ValueError, match="F, H, W, 3"):
        metrics.flicker(np.zeros((4, 4, 3), dtype=np.uint8))


def test_frechet_distance_of_a_set_with_itself_is_zero_and_of_a_shift_its_squared_length() -> None:
    features = np.random.default_rng(0).normal(size=(200, 5))
    assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([3.0, 0, 4.0, 0, 0])
    assert metrics.frechet_distance(features, features + shift) == pytest.approx(25.0)


def test_frechet_distance_agrees_with_the_textbook_formula() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 4)), rng.normal(1.0, 2.0, size=(300, 4)) @ rng.normal(size=(4, 4))
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(textbook, rel=1e-6)


def test_frechet_distance_stays_finite_with_fewer_samples_than_dimensions() -> None:
    rng = np.random.default_rng(2)
    distance = metrics.frechet_distance(rng.normal(size=(3, 38)), rng.normal(size=(5, 38)))
    assert np.isfinite(distance) and distance > 0
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(rng.normal(size=(1, 3)), rng.normal(size=(4, 3)))


def test_clip_score_is_100_times_the_positive_cosine() -> None:
    text = np.array([1.0, 0.0])
    assert metrics.clip_score(np.array([[2.0, 0.0]]), text) == pytest.approx(100.0)
    assert metrics.clip_score(np.array([[0.0, 1.0], [-1.0, 0.0]]), text) == pytest.approx(0.0)
    assert metrics.clip_score(np.array([[1.0, 1.0]]), text) == pytest.approx(100 / np.sqrt(2))


def test_preference_accuracy_counts_ties_as_half() -> None:
    assert metrics.preference_accuracy([1.0, -1.0, 0.0, 2.0]) == pytest.approx(0.625)
    assert metrics.preference_accuracy(np.zeros(7)) == 0.5  # no opinion is chance
    with pytest.raises(ValueError):
        metrics.preference_accuracy([])


def test_spread_is_range_and_population_std() -> None:
    assert metrics.spread({"young woman": 1.0, "old man": 3.0}) == metrics.Spread(range=2.0, std=1.0)
    assert metrics.spread({"only": 5.0}) == metrics.Spread(0.0, 0.0)
