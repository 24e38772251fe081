"""Tastes: named scorings of a video that a simulated marketer picks by (issue 10, the learning loop).

Why they exist: to show that the loop learns, a marketer must prefer something a model can learn and a
test can measure. A taste scores decoded frames (F x H x W x 3 uint8 RGB), higher is better, so the
simulator's picks and the benchmark's judge use the same number. ``random`` is the control: a score
that follows no property of the video, so a model trained on its picks should not win under a real
taste. Every taste is deterministic: the same frames (and, for ``random``, the same seed) give the
same score, in any order and in any process.

Specs, as the command line takes them: ``rgb:R,G,B`` (closest mean colour to a target), ``bright``
(mean luminance), ``motion`` (mean absolute difference between consecutive frames), ``random`` or
``random:SEED``.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# ITU-R BT.601 luma weights: the Y that H.264's yuv420p (what serving encodes) carries.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


class TasteError(ValueError):
    """A taste spec that names no taste, or a taste's arguments out of range."""


class Taste(ABC):
    """A named scoring of a video, higher is better."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The spec that parses back to this taste."""

    @abstractmethod
    def score(self, frames: np.ndarray) -> float:
        """The score of one video, from its decoded frames."""


def _checked(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected F x H x W x 3 frames with F >= 1, got shape {frames.shape}")
    return frames


@dataclass(frozen=True)
class ColourTaste(Taste):
    """Prefers the video whose mean colour is closest to ``target``: score = -Euclidean distance in RGB."""

    target: tuple[int, int, int]

    @property
    def name(self) -> str:
        return "rgb:{},{},{}".format(*self.target)

    def score(self, frames: np.ndarray) -> float:
        mean = _checked(frames).reshape(-1, 3).mean(axis=0)
        return -float(np.linalg.norm(mean - np.asarray(self.target, dtype=np.float64)))


@dataclass(frozen=True)
class BrightTaste(Taste):
    """Prefers the brighter video: score = mean BT.601 luma, 0-255."""

    @property
    def name(self) -> str:
        return "bright"

    def score(self, frames: np.ndarray) -> float:
        return float((_checked(frames).reshape(-1, 3) @ _LUMA_WEIGHTS).mean())


@dataclass(frozen=True)
class MotionTaste(Taste):
    """Prefers the livelier video: score = mean absolute change between consecutive frames, 0-255.

    A single frame has no motion and scores 0.
    """

    @property
    def name(self) -> str:
        return "motion"

    def score(self, frames: np.ndarray) -> float:
        frames = _checked(frames).astype(np.int16)
        if len(frames) < 2:
            return 0.0
        return float(np.abs(np.diff(frames, axis=0)).mean())


@dataclass(frozen=True)
class RandomTaste(Taste):
    """The control: a score in [0, 1) drawn from a hash of the seed and the video's pixels.

    A hash rather than a random stream, so a video's score does not depend on which videos were
    scored before it, nor in which thread.
    """

    seed: int = 0

    @property
    def name(self) -> str:
        return "random" if self.seed == 0 else f"random:{self.seed}"

    def score(self, frames: np.ndarray) -> float:
        frames = np.ascontiguousarray(_checked(frames))
        digest = hashlib.blake2b(frames.tobytes(), digest_size=8, key=str(self.seed).encode()).digest()
        return int.from_bytes(digest, "big") / 2**64


def _parse_rgb(arguments: str) -> ColourTaste:
    try:
        channels = tuple(int(part) for part in arguments.split(","))
    except ValueError:
        channels = ()
    if len(channels) != 3 or not all(0 <= c <= 255 for c in channels):
        raise TasteError(f"rgb taste wants three integers 0-255, as in rgb:255,0,0; got rgb:{arguments}")
    return ColourTaste(channels)  # type: ignore[arg-type]


def _parse_random(arguments: str) -> RandomTaste:
    if not arguments:
        return RandomTaste()
    if not arguments.isdigit():
        raise TasteError(
            f"random taste takes a non-negative integer seed, as in random:7; got random:{arguments}"
        )
    return RandomTaste(int(arguments))


def parse_taste(spec: str) -> Taste:
    """The taste a spec names: ``rgb:R,G,B``, ``bright``, ``motion``, ``random`` or ``random:SEED``."""
    kind, _, arguments = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "rgb":
        return _parse_rgb(arguments)
    if kind == "random":
        return _parse_random(arguments)
    if kind in ("bright", "motion") and not arguments:
        return BrightTaste() if kind == "bright" else MotionTaste()
    raise TasteError(f"unknown taste {spec!r}; use rgb:R,G,B, bright, motion or random[:SEED]")


def pick(taste: Taste, candidates_frames: list[np.ndarray], rng: random.Random, p_best: float = 1.0) -> int:
    """The index a marketer with ``taste`` picks: the best with probability ``p_best``, else a random one.

    Ties go to the lowest index. ``rng`` is drawn from exactly twice per call whatever happens, so a
    sequence of picks stays reproducible when ``p_best`` changes.
    """
    if not candidates_frames:
        raise ValueError("no candidates to pick from")
    if not 0.0 <= p_best <= 1.0:
        raise ValueError(f"p_best must be a probability in [0, 1], got {p_best}")
    scores = [taste.score(frames) for frames in candidates_frames]
    best = scores.index(max(scores))
    take_best = rng.random() < p_best
    anyone = rng.randrange(len(candidates_frames))
    return best if take_best else anyone


def win_rate(taste: Taste, champion: Sequence[np.ndarray], challenger: Sequence[np.ndarray]) -> float:
    """The share of pairs whose challenger video scores higher under ``taste``; a tie counts half."""
    if not champion or len(champion) != len(challenger):
        raise ValueError(
            f"need as many challenger as champion videos, got {len(challenger)} and {len(champion)}"
        )
    wins = 0.0
    for old, new in zip(champion, challenger, strict=True):
        old_score, new_score = taste.score(old), taste.score(new)
        wins += 1.0 if new_score > old_score else 0.5 if new_score == old_score else 0.0
    return wins / len(champion)
