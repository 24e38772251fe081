"""WanSpec and the objectives on tiny-wan: the flow-matching path, encoders, LoRA round trip, DPO algebra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UniPCMultistepScheduler, WanPipeline

from inference.model import generate
from inference.video import encode_mp4
from training.dataset import read_pairs
from training.objectives import dpo_loss, dpo_margins, implicit_reward_margins, sft_loss, velocity_errors
from training.wan_spec import LORA_FILE, WanSpec


@pytest.fixture()
def spec(tiny_wan: Path) -> WanSpec:
    return WanSpec.from_pretrained(tiny_wan, device="cpu")


def _perturb_lora(spec: WanSpec, seed: int = 0) -> None:
    """Give the fresh adapter (B = 0, so a no-op) random weights, so that it changes the prediction."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in spec.transformer.named_parameters():
            if "lora_B" in name:
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))


def test_the_schedule_is_the_samplers(spec: WanSpec) -> None:
    """Training's shifted sigmas are the ones UniPC (flow sigmas, shift 3) visits when sampling."""
    scheduler = UniPCMultistepScheduler.from_config(spec.pipeline.scheduler.config)
    scheduler.set_timesteps(8)
    uniform = torch.from_numpy(np.linspace(1, 1 / 1000, 9)[:-1]).float()
    expected = scheduler.sigmas[:-1].float()
    assert spec.flow_shift == 3.0
    assert torch.allclose(spec.shift_sigmas(uniform)[1:], expected[1:], atol=1e-5)
    sigmas = spec.sample_timesteps(2000, torch.Generator().manual_seed(0))
    assert sigmas.min() > 0 and sigmas.max() < 1
    assert sigmas.median() == pytest.approx(0.75, abs=0.03)  # shift 3 moves the median from 0.5 to 0.75


def test_noisy_latents_walk_the_straight_path(spec: WanSpec) -> None:
    latents, noise = torch.randn(2, 16, 2, 4, 4), torch.randn(2, 16, 2, 4, 4)
    assert torch.equal(spec.noisy_latents(latents, noise, torch.zeros(2)), latents)
    assert torch.equal(spec.noisy_latents(latents, noise, torch.ones(2)), noise)
    halfway = spec.noisy_latents(latents, noise, torch.tensor([0.5, 0.5]))
    assert torch.allclose(halfway, (latents + noise) / 2)
    assert torch.equal(spec.velocity_target(latents, noise), noise - latents)


def test_videos_encode_the_same_from_frames_and_from_mp4(spec: WanSpec, tmp_path: Path) -> None:
    """8 served frames are padded to the VAE's 9 (3 latent frames), whether read from a file or not."""
    frames = generate(
        spec.pipeline, ["a runner"], [3], num_frames=8, height=32, width=32, num_inference_steps=2
    )
    video = frames.videos[0]
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_mp4(video, 8))
    from_frames, from_file = spec.encode_videos([video]), spec.encode_videos([path])
    assert from_frames.shape == (1, 16, 3, 4, 4)
    assert from_file.shape == from_frames.shape
    assert (from_file - from_frames).abs().mean() < 0.1 * from_frames.abs().mean()  # only H.264's loss


def test_prompt_embeddings_are_the_pipelines(spec: WanSpec) -> None:
    embeds = spec.encode_prompts(["a runner at dawn", "a sneaker"])
    # What WanPipeline.__call__ conditions on: its default max_sequence_length is 512.
    reference, _ = spec.pipeline.encode_prompt(
        ["a runner at dawn", "a sneaker"], do_classifier_free_guidance=False, max_sequence_length=512
    )
    assert embeds.shape == (2, 512, spec.transformer.config.text_dim)
    assert torch.equal(embeds, reference.float())


def test_saved_lora_loads_into_wan_pipeline_and_reference_disables_it(
    spec: WanSpec, tiny_wan: Path, tmp_path: Path
) -> None:
    spec.add_lora(rank=4, alpha=4)
    _perturb_lora(spec)
    latents, embeds = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 8, spec.transformer.config.text_dim)
    sigmas = torch.tensor([0.6])
    with torch.no_grad():
        adapted = spec.predict_velocity(latents, sigmas, embeds)
    with spec.reference():
        base = spec.predict_velocity(latents, sigmas, embeds)
    assert not torch.allclose(adapted, base)
    assert spec.save_lora(tmp_path / "lora") == tmp_path / "lora" / LORA_FILE

    pipe = WanPipeline.from_pretrained(tiny_wan)
    plain = pipe.transformer(hidden_states=latents, timestep=sigmas * 1000, encoder_hidden_states=embeds)[0]
    pipe.load_lora_weights(tmp_path / "lora")
    loaded = pipe.transformer(hidden_states=latents, timestep=sigmas * 1000, encoder_hidden_states=embeds)[0]
    assert torch.allclose(plain, base, atol=1e-6)
    assert torch.allclose(loaded, adapted, atol=1e-5)


def test_sft_loss_is_the_mean_velocity_error(spec: WanSpec) -> None:
    latents, embeds = torch.randn(2, 16, 2, 4, 4), torch.randn(2, 8, spec.transformer.config.text_dim)
    generator = torch.Generator().manual_seed(5)
    loss = sft_loss(spec, latents, embeds, torch.Generator().manual_seed(5))
    noise = torch.randn(latents.shape, generator=generator)
    sigmas = spec.sample_timesteps(2, generator)
    with torch.no_grad():
        predicted = spec.predict_velocity(spec.noisy_latents(latents, noise, sigmas), sigmas, embeds)
    assert loss.item() == pytest.approx((predicted - (noise - latents)).pow(2).mean().item(), rel=1e-5)


def test_dpo_margins_are_zero_at_init_and_antisymmetric(spec: WanSpec) -> None:
    spec.add_lora(rank=4, alpha=4)
    winners, losers = torch.randn(3, 16, 2, 4, 4), torch.randn(3, 16, 2, 4, 4)
    w_embeds, l_embeds = torch.randn(3, 8, 32), torch.randn(3, 8, 32)
    step = dpo_loss(
        dpo_margins(spec, winners, losers, w_embeds, l_embeds, 500.0, torch.Generator().manual_seed(0))
    )
    assert step.loss.item() == pytest.approx(np.log(2), abs=1e-6)  # the adapter starts as a no-op
    assert step.reward_margin == 0.0 and step.implicit_accuracy == 0.0
    _perturb_lora(spec)
    forward = dpo_margins(spec, winners, losers, w_embeds, l_embeds, 500.0, torch.Generator().manual_seed(1))
    swapped = dpo_margins(spec, losers, winners, l_embeds, w_embeds, 500.0, torch.Generator().manual_seed(1))
    assert forward.abs().min() > 0
    assert torch.allclose(forward, -swapped, atol=1e-4)


def test_dpo_margin_is_beta_half_of_the_improvement_gap(spec: WanSpec) -> None:
    """margin = -beta/2 * ((err_w - ref_w) - (err_l - ref_l)); winner and loser share noise and sigma."""
    spec.add_lora(rank=4, alpha=4)
    _perturb_lora(spec)
    winners, losers, embeds = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 16, 2, 4, 4), torch.randn(1, 8, 32)
    margins = dpo_margins(spec, winners, losers, embeds, embeds, 100.0, torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(2)
    noise, sigmas = torch.randn(winners.shape, generator=generator), spec.sample_timesteps(1, generator)
    with torch.no_grad():
        err_w, err_l = (velocity_errors(spec, x, embeds, noise, sigmas) for x in (winners, losers))
    with spec.reference():
        ref_w, ref_l = (velocity_errors(spec, x, embeds, noise, sigmas) for x in (winners, losers))
    expected = -50.0 * ((err_w - ref_w) - (err_l - ref_l))
    assert margins.item() == pytest.approx(expected.item(), rel=1e-3, abs=1e-6)


def test_implicit_reward_margins_are_seeded_and_zero_for_the_base(spec: WanSpec, tiny_export: Path) -> None:
    pairs = read_pairs(tiny_export, "train")
    assert torch.equal(implicit_reward_margins(spec, pairs, 500.0, seed=0), torch.zeros(len(pairs)))
    spec.add_lora(rank=4, alpha=4)
    _perturb_lora(spec)
    first = implicit_reward_margins(spec, pairs, 500.0, seed=0, draws=2)
    assert torch.equal(first, implicit_reward_margins(spec, pairs, 500.0, seed=0, draws=2))
    assert not torch.equal(first, implicit_reward_margins(spec, pairs, 500.0, seed=1, draws=2))
