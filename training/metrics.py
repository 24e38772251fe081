"""Pure video quality metrics on decoded frames and feature arrays, with no model, MLflow or database.

Why pure: evaluation (``training.evaluation``) scores champion and challenger with these, and
monitoring will score served videos with the same functions, so a number means the same thing in
both places. Frames are ``uint8`` arrays ``[frames, height, width, 3]`` (RGB); features are float
arrays ``[samples, dims]``. Each function's docstring says exactly what it measures and its range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# ITU-R BT.601 luma weights: the luminance a viewer perceives from RGB.
_LUMA = np.array([0.299, 0.587, 0.114])


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [F, H, W, 3], got shape {frames.shape}")
    if len(frames) == 0:
        raise ValueError("a video needs at least one frame")
    return frames.astype(np.float64)


def luminance(frames: np.ndarray) -> np.ndarray:
    """Per-frame mean luma (BT.601), 0-255, shape ``[F]``."""
    return (_check_frames(frames) @ _LUMA).mean(axis=(1, 2))


def mean_luminance(frames: np.ndarray) -> float:
    """The video's mean luma, 0-255: how bright it looks (a proxy for exposure and skin-tone rendering)."""
    return float(luminance(frames).mean())


@dataclass(frozen=True)
class TemporalConsistency:
    """``1 - mean |frame_t - frame_ref| / 255`` over pixels and channels, averaged over t >= 1.

    ``previous``: each frame against the one before (smoothness); ``first``: each frame against
    the first (drift of the content over the clip). 1.0 means identical frames, 0.0 the most
    different frames 8-bit RGB allows. A one-frame video is perfectly consistent (1.0, 1.0).
    """

    previous: float
    first: float


def temporal_consistency(frames: np.ndarray) -> TemporalConsistency:
    """Pixel-space temporal consistency of one video (see ``TemporalConsistency``)."""
    pixels = _check_frames(frames)
    if len(pixels) < 2:
        return TemporalConsistency(previous=1.0, first=1.0)
    to_previous = np.abs(pixels[1:] - pixels[:-1]).mean(axis=(1, 2, 3)) / 255.0
    to_first = np.abs(pixels[1:] - pixels[:1]).mean(axis=(1, 2, 3)) / 255.0
    return TemporalConsistency(previous=float(1 - to_previous.mean()), first=float(1 - to_first.mean()))


def flicker(frames: np.ndarray) -> float:
    """Mean absolute change of the frames' mean luma between consecutive frames, 0-255 (0: no flicker).

    A global brightness pulse (what viewers see as flicker) moves the mean luma; motion of a
    subject over a steady background barely does, so this separates flicker from motion better
    than a per-pixel difference.
    """
    luma = luminance(frames)
    return float(np.abs(np.diff(luma)).mean()) if len(luma) > 1 else 0.0


def motion(frames: np.ndarray) -> float:
    """Mean absolute per-pixel difference of consecutive frames, 0-255 (0: a still image)."""
    pixels = _check_frames(frames)
    return float(np.abs(np.diff(pixels, axis=0)).mean()) if len(pixels) > 1 else 0.0


def _mean_and_covariance(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature rows [samples, dims], got shape {features.shape}")
    features = features.astype(np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (negative rounding noise clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID/FVD's formula).

    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)``; the trace of the cross term
    is computed through symmetric eigendecompositions, which stay real and stable when the
    covariances are singular (fewer samples than dimensions, as in small evaluations). What the
    number means depends entirely on the features: callers name it for its encoder.
    """
    mean_a, cov_a = _mean_and_covariance(features_a)
    mean_b, cov_b = _mean_and_covariance(features_b)
    if mean_a.shape != mean_b.shape:
        raise ValueError(f"feature sizes differ: {mean_a.shape[0]} vs {mean_b.shape[0]}")
    root_a = _psd_sqrt(np.atleast_2d(cov_a))
    cross = np.linalg.eigvalsh(root_a @ np.atleast_2d(cov_b) @ root_a)
    trace_cross = np.sqrt(np.clip(cross, 0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(np.atleast_2d(cov_a + cov_b)) - 2 * trace_cross
    return float(max(distance, 0.0))


def clip_score(image_embeddings: np.ndarray, text_embedding: np.ndarray) -> float:
    """CLIPScore as torchmetrics defines it: ``100 * max(cos(image, text), 0)``, averaged over frames.

    ``image_embeddings`` ``[frames, dims]`` and ``text_embedding`` ``[dims]`` from the same CLIP
    model. 0-100; only meaningful for a trained CLIP.
    """
    images = image_embeddings / np.linalg.norm(image_embeddings, axis=-1, keepdims=True)
    text = text_embedding / np.linalg.norm(text_embedding)
    return float(100 * np.clip(images @ text, 0, None).mean())


def preference_accuracy(margins: Sequence[float] | np.ndarray) -> float:
    """Share of preference pairs a model orders right: margin > 0 counts 1, a tie 0.5, else 0.

    Ties count half so that a model with no opinion (the base model, whose implicit reward
    relative to itself is exactly 0 on every pair) scores chance, 0.5.
    """
    values = np.asarray(margins, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no preference pairs to score")
    return float(((values > 0) + 0.5 * (values == 0)).mean())


@dataclass(frozen=True)
class Spread:
    """How far one metric moves across the variants of a prompt: ``max - min`` and population std."""

    range: float
    std: float


def spread(values_by_variant: Mapping[str, float]) -> Spread:
    """The spread of a metric across variants (a fairness suite's demographic variants of one prompt)."""
    values = [v for v in values_by_variant.values() if not math.isnan(v)]
    if not values:
        raise ValueError("no values to spread")
    return Spread(range=float(max(values) - min(values)), std=float(np.std(values)))
