"""Prompt variations: one request becomes N distinct, deterministic prompts (camera, lighting, pace, style).

Five candidates of the *same* prompt differ only by noise; varying the shot gives the
marketer real choices, and the picks tell us which shot styles a brand likes. The
variation text is stored with each candidate. Strategies are pluggable by name.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import uuid
from collections.abc import Callable, Sequence

from adfame.contracts import video_object_key
from adfame.repositories.requests import Candidate
from adfame.schemas import PromptRequest

AXES: dict[str, tuple[str, ...]] = {
    "camera": (
        "slow dolly-in shot",
        "wide establishing shot",
        "handheld close-up",
        "low-angle tracking shot",
        "overhead drone shot",
        "smooth orbit around the subject",
    ),
    "lighting": (
        "golden hour light",
        "soft diffused daylight",
        "high-contrast studio lighting",
        "neon night lighting",
        "bright midday sun",
    ),
    "pace": ("slow motion", "energetic fast cuts", "steady calm pace", "dynamic speed ramp"),
    "style": (
        "cinematic film look",
        "clean commercial look",
        "vibrant saturated colors",
        "documentary realism",
        "minimalist aesthetic",
    ),
}

Strategy = Callable[[str, int, uuid.UUID], list[str]]


def _rng(request_id: uuid.UUID) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(request_id.bytes).digest()[:8], "big"))


def shot_styles(prompt: str, n: int, request_id: uuid.UUID) -> list[str]:
    """The prompt plus one modifier from each axis; no two variations share the same combination."""
    rng = _rng(request_id)
    combos = list(itertools.product(*AXES.values()))
    chosen = rng.sample(combos, n)
    return [f"{prompt}, {', '.join(combo)}" for combo in chosen]


def identical(prompt: str, n: int, request_id: uuid.UUID) -> list[str]:
    """No variation: candidates differ by seed only (a control for experiments)."""
    return [prompt] * n


STRATEGIES: dict[str, Strategy] = {"shot_styles": shot_styles, "identical": identical}


def expand(prompt: str, n: int, request_id: uuid.UUID, strategy: str = "shot_styles") -> list[str]:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown variation strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](prompt, n, request_id)


def candidate_seeds(request_id: uuid.UUID, n: int, seed: int | None = None) -> Sequence[int]:
    """One seed per candidate: from the request's seed when given, else from its id (stable on redelivery)."""
    base = seed if seed is not None else int.from_bytes(request_id.bytes[:8], "big") >> 1
    return [(base + i) % 2**63 for i in range(n)]


def plan_candidates(request: PromptRequest, strategy: str = "shot_styles") -> list[Candidate]:
    """The request's candidates before any is made: variation, seed and object key of each.

    Everything here follows from the request alone, so a redelivered request plans the same
    candidates and overwrites the same objects instead of orphaning them.
    """
    prompts = expand(request.prompt, request.num_candidates, request.request_id, strategy)
    seeds = candidate_seeds(request.request_id, request.num_candidates, request.seed)
    return [
        Candidate(index, prompt, seed, video_object_key(request.tenant, str(request.request_id), index))
        for index, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True))
    ]
