"""The named encoders that turn videos into feature rows for a Fréchet distance, and the CLIP scorer.

Why named: a Fréchet distance means only what its features mean. No I3D or CLIP weights can be
downloaded here (docs/architecture.md#models-without-downloads), so the default encoders are
stand-ins and every metric computed with one carries its name (``frechet_distance_pixel_stats``);
the distance is called FVD only when a real I3D model path is configured, and a CLIP score exists
only when a CLIP model path is. Each encoder maps one video (``uint8 [F, H, W, 3]``) to feature
rows ``[k, d]``: one row per frame for frame encoders, one per video for I3D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

FrameEncoderName = Literal["pixel_stats", "vae_latent"]

_COLOUR_BINS = 8
# Luma gradient magnitudes (0-255 scale): flat, soft, edges, hard edges.
_GRADIENT_EDGES = np.array([0, 2, 4, 8, 16, 32, 64, 128, np.inf])
# The input size of the Kinetics I3D network FVD is defined with.
_I3D_SIZE = 224


class VideoEncoder(Protocol):
    """What a Fréchet distance needs: a name for the metric and feature rows per video."""

    name: str

    def features(self, video: np.ndarray) -> np.ndarray: ...


class PixelStatsEncoder:
    """Per frame: an 8-bin histogram of each RGB channel, each channel's mean and std, and an 8-bin
    histogram of luma gradient magnitudes (38 numbers). Needs no model; sees colour, contrast and
    sharpness, nothing semantic."""

    name = "pixel_stats"

    def features(self, video: np.ndarray) -> np.ndarray:
        return np.stack([self._frame_features(frame) for frame in video])

    @staticmethod
    def _frame_features(frame: np.ndarray) -> np.ndarray:
        pixels = frame.reshape(-1, 3).astype(np.float64)
        colour = [np.histogram(pixels[:, c], bins=_COLOUR_BINS, range=(0, 256))[0] for c in range(3)]
        colour_hist = np.concatenate(colour) / len(pixels)
        moments = np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)]) / 255.0
        luma = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        gradient = np.hypot(np.diff(luma, axis=1)[:-1, :], np.diff(luma, axis=0)[:, :-1])
        gradient_hist = np.histogram(gradient, bins=_GRADIENT_EDGES)[0] / max(gradient.size, 1)
        return np.concatenate([colour_hist, moments, gradient_hist])


class VaeLatentEncoder:
    """Per latent frame: the spatial mean and std of each channel of the Wan VAE's encoding,
    normalised the way ``WanPipeline`` normalises latents (2 x ``z_dim`` numbers). Sees what the
    model itself sees; only as meaningful as the VAE (tiny-wan's is tiny)."""

    name = "vae_latent"

    def __init__(self, vae: torch.nn.Module, temporal_factor: int = 4):
        self.vae = vae
        self.temporal_factor = temporal_factor

    @torch.no_grad()
    def features(self, video: np.ndarray) -> np.ndarray:
        usable = (len(video) - 1) // self.temporal_factor * self.temporal_factor + 1
        param = next(self.vae.parameters())
        pixels = torch.from_numpy(np.ascontiguousarray(video[:usable])).to(param.device, param.dtype)
        pixels = (pixels / 127.5 - 1).permute(3, 0, 1, 2).unsqueeze(0)  # 1, C, F, H, W in [-1, 1]
        latents = self.vae.encode(pixels).latent_dist.mean
        config = self.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(latents)
        std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(latents)
        latents = ((latents - mean) / std)[0]  # C, F', H', W'
        rows = torch.cat([latents.mean(dim=(2, 3)), latents.std(dim=(2, 3))], dim=0).T
        return rows.float().cpu().numpy()


class I3dEncoder:
    """One feature row per video from a TorchScript I3D (the network FVD is defined with), loaded
    from a configured path. Input: ``[1, 3, F, 224, 224]`` floats in [-1, 1]; output flattened.
    No I3D weights exist on this machine, so only the loading and calling path is tested here
    (with a small scripted network), never a real FVD."""

    name = "i3d"

    def __init__(self, model_path: Path, device: str = "cpu"):
        self.device = device
        self.model = torch.jit.load(str(model_path), map_location=device).eval()

    @torch.no_grad()
    def features(self, video: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(np.ascontiguousarray(video)).to(self.device, torch.float32)
        pixels = pixels.permute(0, 3, 1, 2) / 127.5 - 1  # F, C, H, W
        pixels = F.interpolate(pixels, size=(_I3D_SIZE, _I3D_SIZE), mode="bilinear", align_corners=False)
        output = self.model(pixels.permute(1, 0, 2, 3).unsqueeze(0))
        return output.reshape(1, -1).float().cpu().numpy()


class ClipScorer:
    """Image and text embeddings from a CLIP model folder (``CLIPModel.from_pretrained(path)`` with its
    tokenizer and image processor saved beside it), for ``metrics.clip_score``."""

    def __init__(self, model_path: Path, device: str = "cpu"):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.device = device
        self.model = CLIPModel.from_pretrained(str(model_path)).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.image_processor = AutoImageProcessor.from_pretrained(str(model_path))

    @torch.no_grad()
    def embeddings(self, video: np.ndarray, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """``[frames, dims]`` image embeddings of the video's frames and ``[dims]`` of the prompt."""
        images = self.image_processor(images=list(video), return_tensors="pt")["pixel_values"]
        image_embeds = self.model.get_image_features(pixel_values=images.to(self.device))
        tokens = self.tokenizer([prompt], padding=True, truncation=True, return_tensors="pt")
        text_embeds = self.model.get_text_features(**tokens.to(self.device))
        return _as_array(image_embeds), _as_array(text_embeds)[0]


def _as_array(output: torch.Tensor | object) -> np.ndarray:
    """Embeddings as numpy, whether transformers returns a tensor or an output holding ``pooler_output``."""
    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
    return tensor.float().cpu().numpy()


def frechet_metric_name(encoder: VideoEncoder) -> str:
    """``fvd`` for I3D features (the definition of FVD), else ``frechet_distance_<encoder name>``."""
    return "fvd" if encoder.name == I3dEncoder.name else f"frechet_distance_{encoder.name}"
