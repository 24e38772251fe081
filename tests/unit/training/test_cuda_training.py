"""LoRA training on a CUDA device, as a GPU training task runs it: bf16 autocast, float32 master weights.

Skipped where there is no CUDA device (marker ``cuda``, tests/conftest.py); a lent GPU runs them with
``python -m pytest -m cuda``. A few steps of each objective, then the LoRA served on the same device.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from adfame.settings import Settings
from inference.model import ModelServer, ModelVersionRef
from training.config import CONFIG_FILE, TrainConfig
from training.trainer import train
from training.wan_spec import LORA_FILE

pytestmark = pytest.mark.cuda

DEVICE = "cuda"


@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_a_few_lora_steps_on_the_gpu_in_bfloat16_serve_on_the_gpu(
    objective: str, tiny_wan: Path, tiny_export: Path, tmp_path: Path, untracked: Settings
) -> None:
    config = TrainConfig(objective=objective, steps=3, batch_size=2, rank=4, alpha=4.0, log_every=1)
    assert config.resolved().mixed_precision == "bf16"
    torch.cuda.reset_peak_memory_stats()
    result = train(
        config,
        tiny_export,
        base_model=str(tiny_wan),
        output_dir=tmp_path,
        settings=untracked,
        progress=False,
        track=False,
    )
    assert torch.cuda.max_memory_allocated() > 0, "the run put nothing on the device"
    assert result.steps == 3 and len(result.losses) == 3
    assert all(math.isfinite(loss) for loss in result.losses)
    assert TrainConfig.from_file(tmp_path / CONFIG_FILE).mixed_precision == "bf16"
    weights = load_file(result.lora_dir / LORA_FILE)
    assert all(w.dtype == torch.float32 for w in weights.values()), "master weights stay float32"
    # peft starts every lora_B at zero: after the steps it has moved.
    assert any(k.endswith("lora_B.weight") and w.abs().max() > 0 for k, w in weights.items())

    server = ModelServer(str(tiny_wan), DEVICE, max_lora_rank=4, settings=untracked)
    shape = {"num_frames": 5, "height": 32, "width": 32}
    prompts, seeds = ["a runner on a beach at sunrise"], [3]
    tuned = server.generate(ModelVersionRef("cuda-test", "1", str(result.lora_dir)), prompts, seeds, **shape)
    assert server.active_version == "cuda-test/1"
    assert tuned.videos[0].shape == (5, 32, 32, 3) and tuned.videos[0].dtype == np.uint8
