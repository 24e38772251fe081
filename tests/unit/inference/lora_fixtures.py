"""Real LoRA files for the serving tests: a few steps of peft training on the tiny transformer.

The file is written with ``WanPipeline.save_lora_weights`` (the diffusers/PEFT layout that
``load_lora_weights`` reads, adapter config in the safetensors metadata), the same format
the training side publishes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import WanPipeline, WanTransformer3DModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


def train_lora(
    model_dir: Path,
    out_dir: Path,
    *,
    target: float,
    rank: int = 4,
    steps: int = 4,
    seed: int = 0,
    target_modules: tuple[str, ...] = ATTENTION_PROJECTIONS,
) -> Path:
    """Fit a LoRA pushing the transformer's prediction toward the constant ``target``; returns its folder."""
    transformer = WanTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")
    transformer.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=list(target_modules), init_lora_weights=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer.add_adapter(config)
        latents = torch.randn(1, transformer.config.in_channels, 2, 4, 4)
        text = torch.randn(1, 8, transformer.config.text_dim)
    timestep = torch.tensor([500.0])
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=5e-2)
    transformer.train()
    for _ in range(steps):
        prediction = transformer(
            hidden_states=latents, timestep=timestep, encoder_hidden_states=text, return_dict=False
        )[0]
        loss = (prediction - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    WanPipeline.save_lora_weights(
        out_dir,
        transformer_lora_layers=get_peft_model_state_dict(transformer),
        transformer_lora_adapter_metadata=config.to_dict(),
    )
    return Path(out_dir)
