"""How often a marketer with a known taste prefers one model version's video to another's.

Why it exists: the evaluation of ``retrain_on_feedback`` measures what a production system can measure
(held-out preference accuracy, temporal consistency, flicker); it cannot know what the marketers like.
A simulated marketer's taste is known, so the demo and the learning benchmark can say in one number
whether the loop learned it: the share of held-out (prompt, seed) cases whose challenger video scores
higher under the taste than the champion's. The cases are the held-out requests of the milestone's
export (never trained on), generated through the serving path and the mp4 round trip, at the serving
settings, so the taste judges what a marketer would see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adfame.schemas import PromptRequest
from adfame.settings import Settings, get_settings
from inference.model import ModelServer, ModelVersionRef, local_lora, version_label
from inference.tastes import Taste, win_rate
from inference.video import decode_mp4, encode_mp4
from training.dataset import fetch_export
from training.evaluation import EvalConfig, Sample, generate_samples, heldout_cases, heldout_pairs
from training.export_layout import MANIFEST_NAME, ExportManifest


@dataclass(frozen=True)
class TasteVerdict:
    """The challenger's win rate against the champion under one taste, and what it was measured on."""

    taste: str
    challenger: str  # name/version
    champion: str  # name/version, or "base"
    cases: int
    win_rate: float


def as_seen(samples: Sequence[Sample], fps: int) -> list[np.ndarray]:
    """The frames a marketer sees: each sample through the mp4 encoding serving applies (lossy)."""
    return [decode_mp4(encode_mp4(sample.frames, fps)) for sample in samples]


def serving_eval_config(
    settings: Settings, heldout_prompts: int = 16, seeds: tuple[int, ...] = (0, 1)
) -> EvalConfig:
    """Generation as the workers serve a default request (frames, size, steps), over more cases than
    the retrain's quick evaluation: a win rate over 4 videos says little."""
    fields = PromptRequest.model_fields
    return EvalConfig(
        heldout_prompts=heldout_prompts,
        seeds=seeds,
        num_frames=fields["num_frames"].default,
        height=fields["height"].default,
        width=fields["width"].default,
        fps=fields["fps"].default,
        num_inference_steps=settings.inference_steps,
    )


def taste_win_rate(
    taste: Taste,
    challenger: ModelVersionRef,
    champion: ModelVersionRef | None,
    export_uri: str,
    settings: Settings | None = None,
    config: EvalConfig | None = None,
) -> TasteVerdict:
    """Generate the export's held-out cases with both versions (``champion`` None: the base model) and
    judge each pair under ``taste``."""
    settings = settings or get_settings()
    config = config or serving_eval_config(settings)
    export_dir = fetch_export(export_uri, settings.models_cache / "win-rate" / "exports")
    manifest = ExportManifest.from_bytes((export_dir / MANIFEST_NAME).read_bytes())
    cases = heldout_cases(heldout_pairs(export_dir), config)
    server = ModelServer(manifest.base_model, settings=settings)
    loras = settings.models_cache / "loras"
    videos = {}
    for role, version in (("champion", champion), ("challenger", challenger)):
        lora: Path | None = None if version is None else local_lora(version, loras)
        samples = generate_samples(server, role, lora, cases, config)
        videos[role] = as_seen(samples, config.fps)
    return TasteVerdict(
        taste=taste.name,
        challenger=version_label(challenger),
        champion=version_label(champion),
        cases=len(cases),
        win_rate=win_rate(taste, videos["champion"], videos["challenger"]),
    )
