"""Serving on a CUDA device, as a GPU worker serves: bfloat16 transformer, float32 VAE, LoRAs hot-swapped.

Skipped where there is no CUDA device (marker ``cuda``, tests/conftest.py); a lent GPU runs them with
``python -m pytest -m cuda``. The CPU float32 server of the same model is the reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lora_fixtures import train_lora

from inference.model import ModelServer, ModelVersionRef, enable_cache
from inference.tiny_wan import build_tiny_wan

pytestmark = pytest.mark.cuda

DEVICE = "cuda"
PROMPTS = ["a woman running in sneakers on a beach", "a sneaker rotates on a pedestal"]
SEEDS = [7, 8]
SMALL = {"num_frames": 5, "height": 32, "width": 32}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_wan(tmp_path_factory.mktemp("tiny-wan"), seed=0)


@pytest.fixture(scope="module")
def loras(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelVersionRef]:
    """Two versions pulling opposite ways, of different ranks (hot-swap pads to the server's rank)."""
    root = tmp_path_factory.mktemp("loras")
    return {
        "1": ModelVersionRef("adfame-wan-lora", "1", str(train_lora(model_dir, root / "v1", target=1.0))),
        "2": ModelVersionRef(
            "adfame-wan-lora", "2", str(train_lora(model_dir, root / "v2", target=-1.0, rank=8, seed=2))
        ),
    }


@pytest.fixture(scope="module")
def gpu_server(model_dir: Path) -> ModelServer:
    return ModelServer(str(model_dir), DEVICE, max_lora_rank=8)


@pytest.fixture(scope="module")
def cpu_server(model_dir: Path) -> ModelServer:
    return ModelServer(str(model_dir), "cpu", max_lora_rank=8)


def _diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(x.astype(np.int16) - y).mean() for x, y in zip(a, b, strict=True)]))


def test_a_gpu_server_serves_bfloat16_and_makes_the_cpu_candidates(
    gpu_server: ModelServer, cpu_server: ModelServer
) -> None:
    pipe = gpu_server.pipe
    assert pipe.transformer.device.type == DEVICE and pipe.transformer.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32 and pipe.text_encoder.dtype == torch.bfloat16
    made = gpu_server.generate(None, PROMPTS, SEEDS, **SMALL)
    assert [v.shape for v in made.videos] == [(5, 32, 32, 3)] * 2
    assert all(v.dtype == np.uint8 for v in made.videos)
    assert {"activate_s", "denoise_s", "decode_s"} <= set(made.timings)
    reference = cpu_server.generate(None, PROMPTS, SEEDS, **SMALL).videos
    other_seed = _diff(reference, cpu_server.generate(None, PROMPTS, [99, 98], **SMALL).videos)
    # bfloat16 moves pixels by a level or so; another seed moves them by many.
    assert _diff(made.videos, reference) < 2.0 < other_seed


def test_loras_hot_swap_on_the_gpu_and_match_the_cpu(
    gpu_server: ModelServer, cpu_server: ModelServer, loras: dict[str, ModelVersionRef]
) -> None:
    transformer = gpu_server.pipe.transformer
    base = gpu_server.generate(None, PROMPTS, SEEDS, **SMALL).videos
    v1 = gpu_server.generate(loras["1"], PROMPTS, SEEDS, **SMALL).videos
    v2 = gpu_server.generate(loras["2"], PROMPTS, SEEDS, **SMALL).videos
    assert gpu_server.active_version == "adfame-wan-lora/2"
    assert _diff(base, v1) > 1.0 and _diff(v1, v2) > 1.0
    assert gpu_server.pipe.transformer is transformer, "the base model was not reloaded"
    again = gpu_server.generate(loras["1"], PROMPTS, SEEDS, **SMALL).videos
    assert _diff(v1, again) < 0.5  # the same weights swapped back in
    on_cpu = cpu_server.generate(loras["1"], PROMPTS, SEEDS, **SMALL).videos
    assert _diff(v1, on_cpu) < 2.0


@pytest.mark.parametrize("kind", ["first_block", "mag"])
def test_caches_run_on_the_gpu(gpu_server: ModelServer, kind: str) -> None:
    steps = 4
    plain = gpu_server.generate(None, PROMPTS, SEEDS, num_inference_steps=steps, **SMALL).videos
    enable_cache(gpu_server.pipe, kind, 1e6, num_inference_steps=steps)  # type: ignore[arg-type]
    try:
        skipped = gpu_server.generate(None, PROMPTS, SEEDS, num_inference_steps=steps, **SMALL).videos
    finally:
        enable_cache(gpu_server.pipe, None)
    assert [v.shape for v in skipped] == [(5, 32, 32, 3)] * 2
    assert _diff(plain, skipped) > 0.1  # a threshold that skips every step it may changes the videos
