"""Training objectives on Wan's flow-matching parametrisation: plain fine-tuning and Diffusion-DPO.

``sft``: the flow-matching MSE between the predicted and the true velocity (``noise - x_0``) on
the winners. ``dpo``: Diffusion-DPO (Wallace et al. 2023) carried over to flow matching as
Flow-DPO does: winner and loser share the noise and the timestep, each error is the per-sample
mean squared velocity error, the reference is the same transformer with its LoRA disabled, and

    margin = -beta / 2 * ((err_w - ref_err_w) - (err_l - ref_err_l)),   loss = -logsigmoid(margin).

A positive margin means the adapter moved the winner's error down relative to the loser's, i.e.
the model's implicit reward orders the pair as the marketer did. Each clip is conditioned on the
variation prompt it was generated from, as serving prompts the model. Because errors are means over
latent elements, a useful beta is in the hundreds (about 500 on tiny-wan); watch the implicit
accuracy rather than the loss's value (../shared/DESIGN.md section 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from training.wan_spec import WanSpec

if TYPE_CHECKING:
    from training.dataset import PreferencePair


@dataclass(frozen=True)
class DpoStep:
    """One DPO batch: the loss to back-propagate, and how well the batch's pairs are ordered."""

    loss: torch.Tensor
    implicit_accuracy: float  # share of pairs with a positive margin
    reward_margin: float  # mean margin


def velocity_errors(
    spec: WanSpec,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
) -> torch.Tensor:
    """Per-sample mean squared error of the predicted velocity, shape [B]."""
    noisy = spec.noisy_latents(latents, noise, sigmas)
    predicted = spec.predict_velocity(noisy, sigmas, prompt_embeds)
    target = spec.velocity_target(latents, noise)
    return (predicted.float() - target.float()).pow(2).flatten(1).mean(dim=1)


def _noise_and_sigmas(
    spec: WanSpec, latents: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise drawn on the CPU from ``generator`` (the same on every device), and one sigma per sample."""
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    return noise, spec.sample_timesteps(latents.shape[0], generator)


def sft_loss(
    spec: WanSpec, latents: torch.Tensor, prompt_embeds: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Flow-matching MSE on ``latents`` given their prompts (fine-tuning on the winners)."""
    noise, sigmas = _noise_and_sigmas(spec, latents, generator)
    return velocity_errors(spec, latents, prompt_embeds, noise, sigmas).mean()


def dpo_margins(
    spec: WanSpec,
    winners: torch.Tensor,
    losers: torch.Tensor,
    winner_embeds: torch.Tensor,
    loser_embeds: torch.Tensor,
    beta: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The implicit reward margin of each pair, differentiable through the adapter ([B]).

    Winner and loser run in one forward pass with the same noise and the same sigma; the
    reference pass runs the same batch with the adapters disabled.
    """
    noise, sigmas = _noise_and_sigmas(spec, winners, generator)
    latents = torch.cat([winners, losers])
    embeds = torch.cat([winner_embeds, loser_embeds])
    noise2, sigmas2 = torch.cat([noise, noise]), torch.cat([sigmas, sigmas])
    errors = velocity_errors(spec, latents, embeds, noise2, sigmas2)
    with spec.reference():
        reference = velocity_errors(spec, latents, embeds, noise2, sigmas2)
    improvement = errors - reference  # < 0 where the adapter fits a clip better than the base
    pairs = winners.shape[0]
    return -0.5 * beta * (improvement[:pairs] - improvement[pairs:])


def dpo_loss(margins: torch.Tensor) -> DpoStep:
    """Diffusion-DPO's loss, ``-logsigmoid(margin)`` averaged, and how well the batch orders its pairs.

    It takes the margins (``dpo_margins``, which held-out scoring calls too), not the batch, so the
    flow-matching pass that makes them is written once.
    """
    detached = margins.detach()
    return DpoStep(
        loss=-F.logsigmoid(margins).mean(),
        implicit_accuracy=(detached > 0).float().mean().item(),
        reward_margin=detached.mean().item(),
    )


@torch.no_grad()
def implicit_reward_margins(
    spec: WanSpec,
    pairs: Sequence[PreferencePair],
    beta: float,
    seed: int,
    *,
    draws: int = 4,
    batch_size: int = 8,
) -> torch.Tensor:
    """One margin per pair (> 0 when the model with its LoRA orders the pair as the pick did).

    Each pair is scored under ``draws`` (noise, sigma) draws from ``seed`` and the margins
    averaged, so two models scored with the same seed see exactly the same noise. With no LoRA
    attached every margin is 0: the base model is its own reference.
    """
    winners = spec.encode_videos([pair.winner.video for pair in pairs])
    losers = spec.encode_videos([pair.loser.video for pair in pairs])
    winner_embeds = spec.encode_prompts([pair.winner.variation_prompt for pair in pairs])
    loser_embeds = spec.encode_prompts([pair.loser.variation_prompt for pair in pairs])
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(pairs))
    for _ in range(draws):
        for start in range(0, len(pairs), batch_size):
            chunk = slice(start, start + batch_size)
            margins = dpo_margins(
                spec,
                winners[chunk],
                losers[chunk],
                winner_embeds[chunk],
                loser_embeds[chunk],
                beta,
                generator,
            )
            total[chunk] += margins.float().cpu()
    return total / draws
