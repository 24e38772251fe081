"""tiny-wan's pretraining: reproducible to the byte, and its candidates differ visibly (issue 10).

The spread figures are the within-request spread of the candidates' mean colour: the standard
deviation over a request's 5 candidates of each candidate's mean R, G and B (0-255), averaged
over the channels and the requests. Measured on 20 requests (``python -m bench.tiny_wan_spread``):
about 1.7 untrained (0.4 for tiny-wan before its VAE had residual resampling), about 29 pretrained.
The thresholds sit well between the two.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from diffusers import WanPipeline

from inference.model import generate, load_pipeline
from inference.tiny_wan import BUILD_FILE, build_key, build_tiny_wan, cached_tiny_wan, train_tokenizer
from inference.tiny_wan_pretraining import PretrainRecipe, draw_clips
from inference.variations import candidate_seeds, expand

# A recipe small enough to build twice in a test, and still run every stage of the pretraining.
SMALL_RECIPE = PretrainRecipe(
    vae_steps=2,
    vae_batch=1,
    vae_frames=5,
    vae_size=16,
    clips=4,
    clip_frames=5,
    clip_size=32,
    transformer_steps=2,
    transformer_batch=2,
)
PRETRAINED_MIN_SPREAD = 8.0  # the pretrained build measures about 29
UNTRAINED_MAX_SPREAD = 4.0  # the untrained build measures about 1.7
PROMPTS = (
    "a woman running in sneakers on a beach",
    "a sports car drives along a coastal highway",
    "a barista pours latte art into a ceramic cup",
    "a skier carves through fresh powder snow",
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _candidates(pipe: WanPipeline) -> list[list[np.ndarray]]:
    """Five candidates per prompt, planned the way the worker plans a request (variations, seeds)."""
    requests = []
    for prompt in PROMPTS:
        request_id = uuid.UUID(bytes=hashlib.sha256(prompt.encode()).digest()[:16])
        prompts = expand(prompt, 5, request_id)
        seeds = list(candidate_seeds(request_id, 5))
        requests.append(generate(pipe, prompts, seeds, num_frames=16, height=64, width=64).videos)
    return requests


def _within_request_spread(requests: list[list[np.ndarray]]) -> float:
    means = [np.array([video.reshape(-1, 3).mean(axis=0) for video in videos]) for videos in requests]
    return float(np.mean([m.std(axis=0).mean() for m in means]))


def test_drawn_clips_move_and_their_captions_use_known_words() -> None:
    clips = draw_clips(np.random.default_rng(0), 6, 5, 32)
    assert clips.videos.shape == (6, 3, 5, 32, 32)
    assert clips.videos.min() >= -1 and clips.videos.max() <= 1
    assert (clips.videos[:, :, 1:] - clips.videos[:, :, :-1]).abs().amax(dim=(1, 2, 3, 4)).min() > 0
    assert clips.videos.mean(dim=(2, 3, 4)).std(dim=0).min() > 0.1, "colours differ between clips"
    tokenizer = train_tokenizer()
    for caption in clips.captions:
        assert tokenizer.unk_token_id not in tokenizer(caption).input_ids, caption
    again = draw_clips(np.random.default_rng(0), 6, 5, 32)
    assert again.captions == clips.captions and bool((again.videos == clips.videos).all())


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-wan (seed 0) with its random initial weights: what the pretraining is measured against."""
    return build_tiny_wan(tmp_path_factory.mktemp("untrained"), seed=0, recipe=None)


def test_a_recipe_builds_byte_identical_weights_once_per_key(untrained: Path, tmp_path: Path) -> None:
    first = cached_tiny_wan(seed=0, recipe=SMALL_RECIPE, cache_root=tmp_path / "a")
    second = cached_tiny_wan(seed=0, recipe=SMALL_RECIPE, cache_root=tmp_path / "b")
    assert first.name == second.name == f"tiny-wan-{build_key(0, SMALL_RECIPE)}"
    assert _files(first) == _files(second), "two builds of one recipe differ"
    build = json.loads((first / BUILD_FILE).read_text())
    assert build["key"] == build_key(0, SMALL_RECIPE) and build["recipe"]["vae_steps"] == 2
    for weights in (
        "vae/diffusion_pytorch_model.safetensors",
        "transformer/diffusion_pytorch_model.safetensors",
    ):
        assert (first / weights).read_bytes() != (untrained / weights).read_bytes(), weights
    # Built once: a second request for the same key reuses the folder as it is.
    stamp = (first / "model_index.json").stat().st_mtime_ns
    assert cached_tiny_wan(seed=0, recipe=SMALL_RECIPE, cache_root=tmp_path / "a") == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp
    assert build_key(1, SMALL_RECIPE) != build_key(0, SMALL_RECIPE) != build_key(0, None)


@pytest.fixture(scope="module")
def pretrained() -> WanPipeline:
    """The default build (seed 0, the published recipe), from the shared build cache."""
    return load_pipeline(str(cached_tiny_wan(seed=0)), device="cpu")


def test_pretrained_candidates_differ_visibly_in_colour_brightness_and_motion(
    pretrained: WanPipeline, untrained: Path
) -> None:
    requests = _candidates(pretrained)
    spread = _within_request_spread(requests)
    assert spread > PRETRAINED_MIN_SPREAD, f"within-request colour spread {spread:.2f}"
    brightness = [video.mean() for videos in requests for video in videos]
    assert max(brightness) - min(brightness) > 20, "candidates differ in brightness"
    motion = [
        np.abs(np.diff(video.astype(np.float32), axis=0)).mean() for videos in requests for video in videos
    ]
    assert min(motion) > 0.5, "every candidate moves"
    # The control: the same requests on the untrained model come out nearly the same colour.
    control = load_pipeline(str(untrained), device="cpu")
    assert _within_request_spread(_candidates(control)) < UNTRAINED_MAX_SPREAD
