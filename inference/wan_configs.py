"""The Wan 2.1 text-to-video architectures, written once: the released 1.3B and 14B, and a small CPU stand-in.

The sizes are those of Wan-AI's ``Wan2.1-T2V-1.3B-Diffusers`` and ``Wan2.1-T2V-14B-Diffusers`` configs
(transformer, UMT5-XXL text encoder, Wan VAE, UniPC flow scheduler with shift 3 at 480p). No weights come
with them (none can be downloaded here): ``random_pipeline`` builds a pipeline of an architecture with
random weights, typed and placed as ``load_pipeline`` serves a saved one, so that time and memory are
those of the real model while its pixels are noise (bench/gpu.py). tiny-wan, the model the loop serves,
keeps its own specification in inference/tiny_wan.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from diffusers.models.modeling_utils import ModelMixin
from transformers import UMT5Config, UMT5EncoderModel

from inference.tiny_wan import train_tokenizer

# What every Wan 2.1 T2V size shares: 16 latent channels, 2x2 patches, UMT5-XXL's 4096-d embeddings.
_TRANSFORMER_COMMON: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "in_channels": 16,
    "out_channels": 16,
    "freq_dim": 256,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}
# google/umt5-xxl's encoder, the text encoder of every Wan 2.1 size.
UMT5_XXL: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "dropout_rate": 0.0,
    "tie_word_embeddings": False,
}
# Wan 2.1's VAE: 8x spatial and 4x temporal compression into 16 channels (AutoencoderKLWan's defaults).
WAN21_VAE: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
}


@dataclass(frozen=True)
class WanArchitecture:
    """The constructor arguments of each component of one Wan text-to-video size."""

    name: str
    transformer: dict[str, Any]
    text_encoder: dict[str, Any] = field(default_factory=lambda: dict(UMT5_XXL))
    vae: dict[str, Any] = field(default_factory=lambda: dict(WAN21_VAE))
    flow_shift: float = 3.0  # Wan's 480p setting (5.0 at 720p)

    @property
    def transformer_params_b(self) -> float:
        """Billions of transformer parameters, from the shapes alone (no model is built)."""
        with torch.device("meta"):
            model = WanTransformer3DModel(**self.transformer)
        return sum(p.numel() for p in model.parameters()) / 1e9


WAN21_T2V_1_3B = WanArchitecture(
    "wan2.1-t2v-1.3b",
    {
        **_TRANSFORMER_COMMON,
        "num_attention_heads": 12,
        "attention_head_dim": 128,
        "ffn_dim": 8960,
        "num_layers": 30,
        "text_dim": 4096,
    },
)
WAN21_T2V_14B = WanArchitecture(
    "wan2.1-t2v-14b",
    {
        **_TRANSFORMER_COMMON,
        "num_attention_heads": 40,
        "attention_head_dim": 128,
        "ffn_dim": 13824,
        "num_layers": 40,
        "text_dim": 4096,
    },
)
# The same code paths at a size two CPU cores run in seconds: what keeps bench/gpu.py from rotting.
CPU_SMALL = WanArchitecture(
    "cpu-small",
    {
        **_TRANSFORMER_COMMON,
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "ffn_dim": 64,
        "num_layers": 3,
        "text_dim": 32,
    },
    text_encoder={
        **UMT5_XXL,
        "vocab_size": 512,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 64,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
        "relative_attention_max_distance": 32,
    },
    vae={**WAN21_VAE, "base_dim": 8, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1},
)
ARCHITECTURES: dict[str, WanArchitecture] = {a.name: a for a in (WAN21_T2V_1_3B, WAN21_T2V_14B, CPU_SMALL)}


def architecture(name: str) -> WanArchitecture:
    """The architecture called ``name``; a clear error listing the known ones otherwise."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown Wan architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def cast_as_loaded(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast ``model``'s parameters to ``dtype`` as ``from_pretrained`` loads them in that dtype.

    diffusers keeps the modules a class names in ``_keep_in_fp32_modules`` (Wan's time embedding,
    norms, modulation table) in float32, matching a name's dotted parts; transformers casts a UMT5
    encoder wholly to bfloat16. Buffers (Wan's RoPE tables) stay as built, as they do when loading.
    """
    keep = (model._keep_in_fp32_modules or []) if isinstance(model, ModelMixin) else []
    for name, param in model.named_parameters():
        if dtype != torch.float32 and any(kept in name.split(".") for kept in keep):
            continue
        param.data = param.data.to(dtype)


def random_pipeline(
    arch: WanArchitecture, device: str | torch.device, dtype: torch.dtype, seed: int = 0
) -> WanPipeline:
    """A ``WanPipeline`` of ``arch`` with random weights on ``device``, as ``load_pipeline`` would serve it.

    Built directly on the device (a 14B transformer would take minutes to initialise on a CPU), in
    float32 and then cast: transformer and text encoder to ``dtype`` (``cast_as_loaded``), the VAE
    float32 whatever ``dtype`` says. The tokenizer is tiny-wan's (512 pieces; UMT5's own cannot be
    downloaded): the pipeline pads every prompt to 512 tokens, so the encoder's work is the real one.
    """
    device = torch.device(device)
    tokenizer = train_tokenizer()
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), device:
        torch.manual_seed(seed)
        # Each part cast as soon as it is built: the peak is one float32 part, not all of them.
        text_encoder = UMT5EncoderModel(UMT5Config(**arch.text_encoder))
        cast_as_loaded(text_encoder, dtype)
        vae = AutoencoderKLWan(**arch.vae)
        transformer = WanTransformer3DModel(**arch.transformer)
        cast_as_loaded(transformer, dtype)
    for part in (text_encoder, vae, transformer):
        part.eval()
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=arch.flow_shift,
        num_train_timesteps=1000,
    )
    pipe = WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
