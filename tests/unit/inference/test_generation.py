"""Candidates come out of one batched call, right-sized, reproducible per seed; caches plug in and out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import WanPipeline

from inference.model import enable_cache, generate, load_pipeline, valid_num_frames
from inference.tiny_wan import build_tiny_wan

PROMPTS = [
    "a woman running in sneakers on a beach",
    "a basketball player dunks under floodlights",
    "a sneaker rotates on a pedestal, studio lighting",
    "a surfer rides a wave at sunset",
    "a cyclist climbs a mountain road at dawn",
]
SEEDS = [11, 12, 13, 14, 15]
SMALL = {"num_frames": 5, "height": 32, "width": 32}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"), seed=0)


@pytest.fixture(scope="module")
def pipe(model_dir: Path) -> WanPipeline:
    return load_pipeline(str(model_dir))


@pytest.fixture(autouse=True)
def no_cache(pipe: WanPipeline):
    yield
    enable_cache(pipe, None, 0.0)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_valid_num_frames() -> None:
    assert [valid_num_frames(n) for n in (1, 2, 5, 16, 17, 18, 81)] == [1, 5, 5, 17, 17, 21, 81]
    with pytest.raises(ValueError):
        valid_num_frames(0)


def test_five_candidates_of_the_requested_shape(pipe: WanPipeline) -> None:
    result = generate(pipe, PROMPTS, SEEDS, num_frames=17, height=64, width=64)
    assert len(result.videos) == 5
    for video in result.videos:
        assert video.shape == (17, 64, 64, 3)
        assert video.dtype == np.uint8
    assert set(result.timings) == {"denoise_s", "decode_s"}
    assert all(t > 0 for t in result.timings.values())


def test_frame_counts_wan_cannot_make_are_trimmed(pipe: WanPipeline) -> None:
    result = generate(pipe, PROMPTS[:2], SEEDS[:2], num_frames=6, height=32, width=48)
    assert [v.shape for v in result.videos] == [(6, 32, 48, 3)] * 2


def test_batched_equals_sequential_and_seeds_matter(pipe: WanPipeline) -> None:
    batched = generate(pipe, PROMPTS, SEEDS, **SMALL).videos
    for prompt, seed, video in zip(PROMPTS, SEEDS, batched, strict=True):
        alone = generate(pipe, [prompt], [seed], **SMALL).videos[0]
        # Batched kernels may round differently in the last bit; a candidate stays the same video.
        assert np.abs(alone.astype(np.int16) - video).max() <= 2
        assert _diff(alone, video) < 0.05
    # Different seeds (and prompts) give clearly different candidates.
    assert min(_diff(batched[0], other) for other in batched[1:]) > 1.0
    same_prompt = generate(pipe, [PROMPTS[0]] * 2, [1, 2], **SMALL).videos
    assert _diff(*same_prompt) > 1.0


def test_same_prompts_and_seeds_reproduce_the_frames(pipe: WanPipeline) -> None:
    first = generate(pipe, PROMPTS[:2], SEEDS[:2], **SMALL).videos
    second = generate(pipe, PROMPTS[:2], SEEDS[:2], **SMALL).videos
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_requests_are_refused(pipe: WanPipeline) -> None:
    with pytest.raises(ValueError, match="one seed per prompt"):
        generate(pipe, PROMPTS, SEEDS[:2], **SMALL)
    with pytest.raises(ValueError, match="multiples of 16"):
        generate(pipe, PROMPTS[:1], SEEDS[:1], num_frames=5, height=40, width=32)


@pytest.mark.parametrize("kind", ["first_block", "mag"])
def test_cache_skips_blocks_and_can_be_disabled(pipe: WanPipeline, kind: str) -> None:
    steps = 6
    plain = generate(pipe, PROMPTS[:2], SEEDS[:2], num_inference_steps=steps, **SMALL).videos
    # A threshold nothing stays under changes nothing: the cache is there but never skips.
    enable_cache(pipe, kind, 0.0, num_inference_steps=steps)
    assert pipe.transformer.is_cache_enabled
    unskipped = generate(pipe, PROMPTS[:2], SEEDS[:2], num_inference_steps=steps, **SMALL).videos
    assert max(_diff(a, b) for a, b in zip(plain, unskipped, strict=True)) < 0.05
    # A huge threshold skips whatever the cache may skip, which changes the videos.
    enable_cache(pipe, kind, 1e6, num_inference_steps=steps)
    skipped = generate(pipe, PROMPTS[:2], SEEDS[:2], num_inference_steps=steps, **SMALL).videos
    assert all(v.shape == (5, 32, 32, 3) for v in skipped)
    assert min(_diff(a, b) for a, b in zip(plain, skipped, strict=True)) > 0.1
    enable_cache(pipe, None, 0.0)
    assert not pipe.transformer.is_cache_enabled
    again = generate(pipe, PROMPTS[:2], SEEDS[:2], num_inference_steps=steps, **SMALL).videos
    for a, b in zip(plain, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_cache_kind(pipe: WanPipeline) -> None:
    with pytest.raises(ValueError, match="unknown cache kind"):
        enable_cache(pipe, "faster", 0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cpu", id="cpu"),
        pytest.param("cuda", id="cuda", marks=pytest.mark.cuda),
    ],
)
def test_bfloat16_serving_changes_pixels_not_videos(pipe: WanPipeline, model_dir: Path, device: str) -> None:
    """A GPU worker serves in bfloat16 (VAE in float32): its candidates stay those of float32."""
    served = load_pipeline(str(model_dir), device=device, dtype=torch.bfloat16)
    assert served.transformer.dtype == torch.bfloat16 and served.vae.dtype == torch.float32
    assert served._execution_device.type == device
    low = generate(served, PROMPTS[:2], SEEDS[:2], **SMALL)
    full = generate(pipe, PROMPTS[:2], SEEDS[:2], **SMALL)
    assert [v.shape for v in low.videos] == [v.shape for v in full.videos] == [(5, 32, 32, 3)] * 2
    assert all(v.dtype == np.uint8 for v in low.videos)
    other_seed = _diff(full.videos[0], generate(pipe, PROMPTS[:1], [99], **SMALL).videos[0])
    assert other_seed > 5.0
    for ours, reference in zip(low.videos, full.videos, strict=True):
        # About 0.05 levels of 255 on a CPU; another seed is about 13 levels away.
        assert _diff(ours, reference) < 2.0, (_diff(ours, reference), other_seed)
