"""The named encoders: shapes and names. The CLIP and I3D here are tiny random networks built in the
test, so their numbers mean nothing; only the loading and calling paths are checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from inference.tiny_wan import build_tiny_wan_pipeline, train_tokenizer
from training import metrics
from training.frame_encoders import (
    ClipScorer,
    I3dEncoder,
    PixelStatsEncoder,
    VaeLatentEncoder,
    frechet_metric_name,
)

VIDEO = np.random.default_rng(0).integers(0, 256, size=(9, 32, 32, 3), dtype=np.uint8)


def test_pixel_stats_are_38_numbers_per_frame_with_normalised_histograms() -> None:
    encoder = PixelStatsEncoder()
    features = encoder.features(VIDEO)
    assert features.shape == (9, 38)
    colour, gradient = features[:, :24], features[:, 30:]
    assert np.allclose(colour.reshape(9, 3, 8).sum(axis=2), 1.0)
    assert np.allclose(gradient.sum(axis=1), 1.0)
    assert frechet_metric_name(encoder) == "frechet_distance_pixel_stats"


def test_pixel_stats_tell_a_dark_video_from_a_bright_one() -> None:
    dark, bright = VIDEO // 4, 192 + VIDEO // 4
    encoder = PixelStatsEncoder()
    near = metrics.frechet_distance(encoder.features(dark), encoder.features(dark[::-1]))
    far = metrics.frechet_distance(encoder.features(dark), encoder.features(bright))
    assert far > 10 * near


def test_vae_latent_features_are_per_latent_frame() -> None:
    encoder = VaeLatentEncoder(build_tiny_wan_pipeline(seed=0).vae)
    features = encoder.features(VIDEO)  # 9 frames -> 3 latent frames, 16 channels -> mean and std
    assert features.shape == (3, 32)
    assert np.isfinite(features).all()
    assert frechet_metric_name(encoder) == "frechet_distance_vae_latent"


class _TinyVideoNet(torch.nn.Module):
    """A stand-in with I3D's interface ([B, 3, F, H, W] in, features out); not an I3D."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, kernel_size=3, stride=(1, 8, 8))

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        return self.conv(videos).mean(dim=(2, 3, 4))


def test_a_torchscript_i3d_gives_one_row_per_video_and_makes_the_distance_fvd(tmp_path: Path) -> None:
    path = tmp_path / "i3d.pt"
    torch.jit.script(_TinyVideoNet()).save(str(path))
    encoder = I3dEncoder(path)
    assert encoder.features(VIDEO).shape == (1, 4)
    assert frechet_metric_name(encoder) == "fvd"


def tiny_clip(folder: Path) -> Path:
    """A random CLIP of a few thousand weights, saved with a tokenizer and an image processor."""
    tokenizer = train_tokenizer()
    text = {"vocab_size": len(tokenizer), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}
    text |= {"num_attention_heads": 2, "max_position_embeddings": 64, "eos_token_id": tokenizer.eos_token_id}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    vision |= {"image_size": 32, "patch_size": 8}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(
            folder
        )
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder


def test_a_clip_model_folder_scores_frames_against_the_prompt(tmp_path: Path) -> None:
    scorer = ClipScorer(tiny_clip(tmp_path / "clip"))
    images, text = scorer.embeddings(VIDEO, "a sneaker on a beach")
    assert images.shape == (9, 8) and text.shape == (8,)
    score = metrics.clip_score(images, text)  # a random CLIP: the value is not meaningful, only its range
    assert 0.0 <= score <= 100.0
    assert scorer.embeddings(VIDEO, "a sneaker on a beach")[1] == pytest.approx(text)
