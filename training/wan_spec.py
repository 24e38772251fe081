"""The one place of the training side that knows Wan: its components, encoders, noise schedule and LoRA.

Like a finetrainers model specification, everything model-specific sits here, so the objectives
and the trainer speak only of latents, prompt embeddings and velocities. The flow-matching
schedule is read from the pipeline's own scheduler config (Wan 2.1: UniPC on flow sigmas with
``flow_shift``), so training sees the noise levels sampling visits:

    x_t = (1 - sigma) * x_0 + sigma * noise,   the transformer predicts  v = noise - x_0,

with ``sigma`` drawn uniformly and shifted as the scheduler shifts it, and the transformer called
with ``timestep = sigma * num_train_timesteps``, exactly as ``WanPipeline`` calls it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import WanPipeline
from peft import LoraConfig, set_peft_model_state_dict
from peft.utils import get_peft_model_state_dict

from inference.model import default_device, default_dtype, valid_num_frames
from training.video_frames import read_frames

# What WanPipeline.__call__ pads every prompt to; training must condition on the same shape.
MAX_SEQUENCE_LENGTH = 512
LORA_FILE = "pytorch_lora_weights.safetensors"
ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


class SpecError(ValueError):
    """The model or the videos do not fit what the spec can train on; the message says which."""


class LoraShapeMismatch(SpecError):
    """A saved LoRA cannot seed the adapter being trained: rank, alpha or target modules differ."""


_COMPONENT = "transformer."  # diffusers prefixes a pipeline LoRA's keys and metadata by component


@dataclass(frozen=True)
class LoraShape:
    """What must match for one LoRA's weights to seed another adapter."""

    rank: int
    alpha: float
    target_modules: tuple[str, ...]

    @classmethod
    def of_saved(cls, folder: Path) -> LoraShape:
        """The shape a saved LoRA (``save_lora``'s folder) records in its adapter metadata."""
        _, metadata = WanPipeline.lora_state_dict(folder, return_lora_metadata=True)
        config = {key.removeprefix(_COMPONENT): value for key, value in (metadata or {}).items()}
        if "r" not in config:
            raise SpecError(f"the LoRA in {folder} records no adapter config (rank, alpha, modules)")
        return cls(int(config["r"]), float(config["lora_alpha"]), tuple(sorted(config["target_modules"])))

    @classmethod
    def of(cls, rank: int, alpha: float, target_modules: Sequence[str]) -> LoraShape:
        return cls(rank, float(alpha), tuple(sorted(target_modules)))


@dataclass
class WanSpec:
    """A loaded Wan pipeline, frozen, plus the operations training needs.

    ``denoiser`` is the module the forward pass runs through: the transformer itself, or what
    ``accelerate`` wrapped it in (DDP, FSDP, autocast); adapters are toggled on the transformer.
    """

    pipeline: WanPipeline
    device: torch.device
    flow_shift: float
    num_train_timesteps: int
    denoiser: torch.nn.Module
    lora_config: LoraConfig | None = None

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | None = None) -> WanSpec:
        """Load the pipeline at ``model_dir`` (a saved diffusers folder or hub id); every part frozen.

        The transformer and VAE stay float32 (master weights; accelerate's autocast runs bf16 on
        a GPU); the text encoder takes the serving dtype, it only ever runs under no_grad.
        """
        device = torch.device(device or default_device())
        pipe = WanPipeline.from_pretrained(
            model_dir, dtype={"default": torch.float32, "text_encoder": default_dtype(device)}
        )
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        for part in (pipe.transformer, pipe.vae, pipe.text_encoder):
            part.requires_grad_(False)
            part.eval()
        scheduler = pipe.scheduler.config
        if scheduler.get("prediction_type") != "flow_prediction":
            raise SpecError(f"{model_dir}: expected a flow-matching scheduler, got {scheduler}")
        return cls(
            pipeline=pipe,
            device=device,
            flow_shift=float(scheduler.get("flow_shift", 1.0)),
            num_train_timesteps=int(scheduler.get("num_train_timesteps", 1000)),
            denoiser=pipe.transformer,
        )

    @property
    def transformer(self) -> torch.nn.Module:
        return self.pipeline.transformer

    # ---- encoders (run once per run; the trainer caches their output) ------------------

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompt embeddings [B, 512, text_dim] as WanPipeline computes them (float32)."""
        embeds, _ = self.pipeline.encode_prompt(
            list(prompts),
            do_classifier_free_guidance=False,
            max_sequence_length=MAX_SEQUENCE_LENGTH,
            device=self.device,
        )
        return embeds.float()

    @torch.no_grad()
    def encode_videos(self, videos: Sequence[Path | np.ndarray]) -> torch.Tensor:
        """Normalised latents [B, 16, F', H/8, W/8] of mp4 files or F x H x W x 3 uint8 arrays.

        The VAE needs ``4k + 1`` frames; a shorter clip (serving trims 17 generated frames to the 16
        asked for) is padded by repeating its last frame. Latents are the posterior's mode,
        normalised as ``WanPipeline`` un-normalises them before decoding: ``(z - mean) / std``.
        """
        latents = [self._encode_video(read_frames(v) if isinstance(v, Path) else v) for v in videos]
        shapes = {tuple(latent.shape) for latent in latents}
        if len(shapes) > 1:
            raise SpecError(f"videos of different sizes cannot share a batch: latent shapes {sorted(shapes)}")
        return torch.cat(latents)

    def _encode_video(self, frames: np.ndarray) -> torch.Tensor:
        vae = self.pipeline.vae
        wanted = valid_num_frames(len(frames), self.pipeline.vae_scale_factor_temporal)
        if wanted > len(frames):
            frames = np.concatenate([frames, np.repeat(frames[-1:], wanted - len(frames), axis=0)])
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, torch.float32)
        pixels = (pixels / 127.5 - 1.0).permute(3, 0, 1, 2).unsqueeze(0)  # 1, C, F, H, W in [-1, 1]
        z = vae.encode(pixels.to(vae.dtype)).latent_dist.mode()
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(z)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(z)
        return ((z - mean) / std).float()

    # ---- flow matching ----------------------------------------------------------------

    def shift_sigmas(self, sigmas: torch.Tensor) -> torch.Tensor:
        """Wan's time shift, as the scheduler applies it: ``shift * s / (1 + (shift - 1) * s)``.

        A shift above 1 spends more of training (and of sampling) at high noise.
        """
        return self.flow_shift * sigmas / (1 + (self.flow_shift - 1) * sigmas)

    def sample_timesteps(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Flow-matching times ``sigma`` in (0, 1): uniform, then shifted like the scheduler's sigmas."""
        uniform = torch.rand(batch_size, generator=generator).clamp(1e-4, 1 - 1e-4)
        return self.shift_sigmas(uniform).to(self.device)

    @staticmethod
    def noisy_latents(latents: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """``(1 - sigma) * x_0 + sigma * noise``: the point on the straight path the sampler walks back."""
        sigma = sigmas.view(-1, *([1] * (latents.dim() - 1))).to(latents)
        return (1 - sigma) * latents + sigma * noise

    @staticmethod
    def velocity_target(latents: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the transformer should predict on that path (``flow_prediction``)."""
        return noise - latents

    def predict_velocity(
        self, noisy: torch.Tensor, sigmas: torch.Tensor, prompt_embeds: torch.Tensor
    ) -> torch.Tensor:
        """The denoiser's velocity, called as WanPipeline calls it (timestep = sigma * 1000)."""
        return self.denoiser(
            hidden_states=noisy,
            timestep=sigmas * self.num_train_timesteps,
            encoder_hidden_states=prompt_embeds,
            return_dict=False,
        )[0]

    # ---- LoRA -------------------------------------------------------------------------

    def add_lora(
        self, rank: int, alpha: float, target_modules: Sequence[str] = ATTENTION_PROJECTIONS
    ) -> list[torch.nn.Parameter]:
        """Attach a fresh LoRA adapter to the transformer; returns its (only) trainable parameters."""
        self.lora_config = LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=list(target_modules), init_lora_weights=True
        )
        self.transformer.add_adapter(self.lora_config)
        return [p for p in self.transformer.parameters() if p.requires_grad]

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(self.transformer).items()}

    def load_lora_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        result = set_peft_model_state_dict(self.transformer, state)
        if result.unexpected_keys:
            raise SpecError(f"LoRA state has keys this adapter lacks: {result.unexpected_keys[:5]}")

    def start_from(self, folder: Path) -> None:
        """Copy a saved LoRA's weights into the adapter ``add_lora`` attached: training continues from it.

        Why: each retrain refines the served champion instead of starting again from the base model,
        so what earlier milestones taught is kept (their picks are not in this milestone's export).
        The saved adapter must have the shape being trained (``LoraShapeMismatch`` says what differs).
        """
        if self.lora_config is None:
            raise SpecError("no adapter to start: call add_lora first")
        config = self.lora_config
        wanted = LoraShape.of(config.r, config.lora_alpha, config.target_modules)
        saved = LoraShape.of_saved(folder)
        if saved != wanted:
            raise LoraShapeMismatch(f"the LoRA in {folder} ({saved}) cannot seed this adapter ({wanted})")
        state = WanPipeline.lora_state_dict(folder)
        self.load_lora_state_dict({key.removeprefix(_COMPONENT): value for key, value in state.items()})

    def load_lora(self, folder: Path) -> None:
        """Attach a saved LoRA (a folder holding ``pytorch_lora_weights.safetensors``), replacing any.

        Evaluation uses this to score a champion or challenger; the reference stays the base model.
        """
        self.transformer.requires_grad_(False)
        if self.pipeline.get_list_adapters().get("transformer"):
            self.pipeline.delete_adapters(self.pipeline.get_active_adapters())
        self.pipeline.load_lora_weights(folder)
        self.lora_config = None  # a loaded LoRA is evaluated, not trained and saved again

    def save_lora(self, folder: Path) -> Path:
        """Write ``pytorch_lora_weights.safetensors`` (adapter config in its metadata); returns the file."""
        if self.lora_config is None:
            raise SpecError("no LoRA to save: call add_lora first")
        WanPipeline.save_lora_weights(
            folder,
            transformer_lora_layers=get_peft_model_state_dict(self.transformer),
            transformer_lora_adapter_metadata=self.lora_config.to_dict(),
        )
        return Path(folder) / LORA_FILE

    @contextmanager
    def reference(self) -> Iterator[None]:
        """The base model: the same transformer with its adapters disabled, without gradients.

        No second copy of the weights is needed (diffusers' DPO example does the same). Without
        an adapter the transformer already is the base model.
        """
        has_adapter = bool(getattr(self.transformer, "peft_config", None))
        if has_adapter:
            self.transformer.disable_adapters()
        try:
            with torch.no_grad():
                yield
        finally:
            if has_adapter:
                self.transformer.enable_adapters()
