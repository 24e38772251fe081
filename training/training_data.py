"""An export turned into the tensors a training step reads: latents and prompt embeddings, once per run.

The VAE and the text encoder are frozen, so encoding every clip and prompt once up front makes a
step cost only the transformer's passes. The result is cached in the run's output folder under a
key of everything it depends on (the objective, the base model's local location, the export's
index files and every video's bytes), so a resumed run or a re-run skips the encoders.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from training.dataset import read_pairs, read_winners
from training.wan_spec import SpecError, WanSpec

log = logging.getLogger(__name__)

ENCODE_CHUNK = 16


@dataclass
class TrainingData:
    """Encoded clips and prompts, and the items a step samples.

    ``items`` rows index ``latents`` and ``embeds``: sft ``[clip, prompt]`` (a winner or a curated
    clip with its caption); dpo ``[winner clip, winner prompt, loser clip, loser prompt]``.
    """

    latents: torch.Tensor  # [clips, C, F, H, W]
    embeds: torch.Tensor  # [prompts, tokens, text_dim]
    items: torch.Tensor  # [n, 2] or [n, 4], int64

    def __len__(self) -> int:
        return self.items.shape[0]

    def batch(self, indices: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """The tensors of the items at ``indices``: (latents, embeds) per clip/prompt column pair."""
        rows = self.items[indices]
        columns = []
        for clip_col in range(0, rows.shape[1], 2):
            columns.append(self.latents[rows[:, clip_col]].to(device))
            columns.append(self.embeds[rows[:, clip_col + 1]].to(device))
        return columns


def _index(values: list) -> tuple[list, list[int]]:
    """The distinct values in first-seen order, and each value's position among them."""
    positions: dict = {}
    for value in values:
        positions.setdefault(value, len(positions))
    return list(positions), [positions[value] for value in values]


def _export_items(objective: str, export_dir: Path) -> tuple[list[Path], list[str], list[list[int]]]:
    """The clips, prompts and item rows of the export's train split for ``objective``."""
    if objective == "sft":
        winners = read_winners(export_dir, "train")
        clips, clip_ids = _index([path for _, path in winners])
        prompts, prompt_ids = _index([prompt for prompt, _ in winners])
        return clips, prompts, [list(row) for row in zip(clip_ids, prompt_ids, strict=True)]
    pairs = read_pairs(export_dir, "train")
    clips, clip_ids = _index([clip.video for pair in pairs for clip in (pair.winner, pair.loser)])
    prompts, prompt_ids = _index(
        [clip.variation_prompt for pair in pairs for clip in (pair.winner, pair.loser)]
    )
    rows = [
        [clip_ids[2 * i], prompt_ids[2 * i], clip_ids[2 * i + 1], prompt_ids[2 * i + 1]]
        for i in range(len(pairs))
    ]
    return clips, prompts, rows


def _cache_key(objective: str, model_location: str, clips: list[Path], prompts: list[str]) -> str:
    digest = hashlib.sha256(f"{objective}\n{model_location}\n".encode())
    for prompt in prompts:
        digest.update(prompt.encode() + b"\n")
    for clip in clips:
        digest.update(clip.name.encode() + hashlib.sha256(clip.read_bytes()).digest())
    return digest.hexdigest()[:20]


def _encode_all(spec: WanSpec, clips: list[Path], prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    latents = [
        spec.encode_videos(clips[i : i + ENCODE_CHUNK]).cpu() for i in range(0, len(clips), ENCODE_CHUNK)
    ]
    embeds = [
        spec.encode_prompts(prompts[i : i + ENCODE_CHUNK]).cpu() for i in range(0, len(prompts), ENCODE_CHUNK)
    ]
    return torch.cat(latents), torch.cat(embeds)


def load_training_data(
    spec: WanSpec, objective: str, export_dir: Path, cache_dir: Path, model_location: str
) -> TrainingData:
    """The encoded train split of the export at ``export_dir``, from ``cache_dir`` when encoded before."""
    clips, prompts, rows = _export_items(objective, export_dir)
    if not rows:
        raise SpecError(f"the export at {export_dir} has no training items for objective {objective!r}")
    cache = Path(cache_dir) / f"{objective}-{_cache_key(objective, model_location, clips, prompts)}.pt"
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        return TrainingData(stored["latents"], stored["embeds"], stored["items"])
    log.info("encoding %d clips and %d prompts (once; cached in %s)", len(clips), len(prompts), cache)
    latents, embeds = _encode_all(spec, clips, prompts)
    data = TrainingData(latents, embeds, torch.tensor(rows, dtype=torch.int64))
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    torch.save({"latents": data.latents, "embeds": data.embeds, "items": data.items}, partial)
    partial.replace(cache)
    return data
