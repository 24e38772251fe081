"""A short, deterministic pretraining that gives tiny-wan visible tastes to learn.

A randomly initialised VAE decodes almost every latent to the same colour, and a random
transformer turns noise into noise-like latents whose colour averages out over a clip: the
five candidates of a request come out the same grey (within-request spread of the mean colour
about 0.4 on 0-255), and a marketer, real or simulated, has nothing to choose between. Here the
VAE first learns to autoencode small procedurally drawn clips (a coloured background with a
coloured square moving across it), its latent statistics become the pipeline's normalisation,
and then the transformer learns the flow-matching objective the pipeline samples with on those
clips' latents, captioned with their colours and motion. Afterwards different seeds and prompts
decode to visibly different colours, brightness and motion, and a LoRA that moves the latents
moves the colour: a taste can be learned.

No data is downloaded: the clips are drawn here from a seed. Everything runs on one CPU thread
with deterministic kernels, so the same recipe gives byte-identical weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import WanPipeline

# Named colours for captions (the tokenizer's corpus knows every one of these words).
COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "purple": (140, 50, 190),
    "pink": (240, 130, 190),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "silver": (170, 170, 175),
}
DIRECTIONS = ("left", "right", "up", "down")


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything besides the build's seed that decides the pretrained weights.

    The VAE trains on short, small clips (it is convolutional, so it decodes 64x64 and 17 frames
    as well); the transformer trains on latents of clips the size serving generates (16 frames of
    64x64 become 17 frames, 5 x 8 x 8 latents), because its rotary positions depend on the size.
    """

    vae_steps: int = 250
    vae_batch: int = 4
    vae_frames: int = 9
    vae_size: int = 32
    vae_learning_rate: float = 2e-3
    clips: int = 128
    clip_frames: int = 17
    clip_size: int = 64
    transformer_steps: int = 300
    transformer_batch: int = 16
    transformer_learning_rate: float = 1e-3


@dataclass(frozen=True)
class ColouredClips:
    """Clips in [-1, 1] as B x 3 x F x H x W, with one caption each."""

    videos: torch.Tensor
    captions: list[str]


def _colour_name(rgb: np.ndarray) -> str:
    names = list(COLOUR_NAMES)
    palette = np.array([COLOUR_NAMES[n] for n in names], dtype=np.float32) / 255.0
    return names[int(np.argmin(((palette - rgb) ** 2).sum(axis=1)))]


def draw_clips(rng: np.random.Generator, count: int, frames: int, size: int) -> ColouredClips:
    """``count`` clips: a uniform background and a square of another colour moving in a straight line."""
    videos = np.empty((count, frames, size, size, 3), dtype=np.float32)
    captions = []
    grid = np.arange(size, dtype=np.float32)
    for i in range(count):
        background, square = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
        side = rng.uniform(0.25, 0.5) * size
        start = rng.uniform(0, size - side, 2)
        direction = int(rng.integers(len(DIRECTIONS)))
        speed = rng.uniform(0.5, 2.0) * size / 64
        step = np.array([(-speed, 0), (speed, 0), (0, -speed), (0, speed)][direction], dtype=np.float32)
        for f in range(frames):
            x0, y0 = start + step * f
            inside_x = (grid >= x0) & (grid < x0 + side)
            inside_y = (grid >= y0) & (grid < y0 + side)
            mask = (inside_y[:, None] & inside_x[None, :])[..., None]
            videos[i, f] = np.where(mask, square, background)
        captions.append(
            f"a {_colour_name(square)} square moving {DIRECTIONS[direction]} "
            f"on a {_colour_name(background)} background"
        )
    tensor = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).contiguous() * 2 - 1
    return ColouredClips(videos=tensor, captions=captions)


@contextmanager
def deterministic_cpu() -> Iterator[None]:
    """One CPU thread, deterministic kernels and a private RNG state: the same recipe, the same bytes."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def pretrain_vae(pipe: WanPipeline, recipe: PretrainRecipe, seed: int) -> list[float]:
    """Train the VAE to reconstruct drawn clips from its posterior mean; returns the losses.

    A plain autoencoder: the latent scale is fixed afterwards by ``set_latent_statistics``,
    so no KL term is needed to keep it near unit variance.
    """
    vae = pipe.vae
    rng = np.random.default_rng([seed, 1])

    def step_loss() -> torch.Tensor:
        clips = draw_clips(rng, recipe.vae_batch, recipe.vae_frames, recipe.vae_size).videos
        decoded = vae.decode(vae.encode(clips).latent_dist.mode()).sample
        return torch.nn.functional.mse_loss(decoded, clips)

    return _fit(vae, recipe.vae_learning_rate, recipe.vae_steps, step_loss)


@torch.no_grad()
def encode_clips(pipe: WanPipeline, clips: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Posterior means of ``clips`` (B x 16 x F' x H' x W', not normalised)."""
    return torch.cat([pipe.vae.encode(part).latent_dist.mode() for part in clips.split(batch)])


def set_latent_statistics(pipe: WanPipeline, latents: torch.Tensor) -> None:
    """Make the pipeline's latent normalisation the per-channel statistics of the VAE's own latents,

    so that unit Gaussian noise, denormalised the way WanPipeline does it, lands where the decoder
    was trained."""
    mean = latents.mean(dim=(0, 2, 3, 4))
    std = latents.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    pipe.vae.register_to_config(
        latents_mean=[round(v, 6) for v in mean.tolist()], latents_std=[round(v, 6) for v in std.tolist()]
    )


def normalise(pipe: WanPipeline, latents: torch.Tensor) -> torch.Tensor:
    """Raw VAE latents -> the normalised latents the transformer denoises."""
    config = pipe.vae.config
    mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(config.latents_std).view(1, -1, 1, 1, 1)
    return (latents - mean) / std


def shifted_sigmas(uniform: torch.Tensor, shift: float) -> torch.Tensor:
    """The noise levels the sampler visits more often at high noise (Wan's flow shift)."""
    return shift * uniform / (1 + (shift - 1) * uniform)


def pretrain_transformer(
    pipe: WanPipeline, latents: torch.Tensor, captions: list[str], recipe: PretrainRecipe, seed: int
) -> list[float]:
    """Flow matching on normalised clip latents: predict ``noise - latents`` at shifted noise levels."""
    with torch.no_grad():
        text, _ = pipe.encode_prompt(captions, do_classifier_free_guidance=False, device="cpu")
    transformer = pipe.transformer
    generator = torch.Generator().manual_seed(seed * 1000 + 102)
    shift = pipe.scheduler.config.flow_shift

    def step_loss() -> torch.Tensor:
        index = torch.randint(len(latents), (recipe.transformer_batch,), generator=generator)
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator)
        sigmas = shifted_sigmas(torch.rand(len(index), generator=generator), shift)
        noisy = (1 - sigmas.view(-1, 1, 1, 1, 1)) * clean + sigmas.view(-1, 1, 1, 1, 1) * noise
        predicted = transformer(noisy, sigmas * 1000, text[index], return_dict=False)[0]
        return torch.nn.functional.mse_loss(predicted, noise - clean)

    return _fit(transformer, recipe.transformer_learning_rate, recipe.transformer_steps, step_loss)


def _fit(
    module: torch.nn.Module, learning_rate: float, steps: int, step_loss: Callable[[], torch.Tensor]
) -> list[float]:
    """``steps`` AdamW steps on ``module``, each on a fresh ``step_loss()``; returns the losses.

    The one loop of both stages: the VAE's and the transformer's pretraining differ only in what a
    step's loss is (and so in what each step draws)."""
    optimiser = torch.optim.AdamW(module.parameters(), lr=learning_rate)
    module.train()
    losses = []
    for _ in range(steps):
        loss = step_loss()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    module.eval()
    return losses


@dataclass(frozen=True)
class PretrainReport:
    """The loss curves of both stages: first and last values say whether anything was learned."""

    vae_losses: list[float]
    transformer_losses: list[float]


def pretrain_tiny_wan(pipe: WanPipeline, recipe: PretrainRecipe, seed: int) -> PretrainReport:
    """Pretrain ``pipe``'s VAE, then its transformer, in place and deterministically from ``seed``."""
    with deterministic_cpu():
        vae_losses = pretrain_vae(pipe, recipe, seed)
        clips = draw_clips(
            np.random.default_rng([seed, 2]), recipe.clips, recipe.clip_frames, recipe.clip_size
        )
        raw = encode_clips(pipe, clips.videos)
        set_latent_statistics(pipe, raw)
        transformer_losses = pretrain_transformer(pipe, normalise(pipe, raw), clips.captions, recipe, seed)
    return PretrainReport(vae_losses=vae_losses, transformer_losses=transformer_losses)
