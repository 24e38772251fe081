"""How visibly tiny-wan's candidates differ, untrained and pretrained (issue 10, deliverable 1).

For each of ``--requests`` requests (ad prompts of the tokenizer's corpus, planned as the worker
plans them: five shot-style variations, five seeds), the five candidates are generated at the
serving defaults (16 frames of 64x64, the settings' step count) and compared:

- within-request colour spread: the standard deviation over the 5 candidates of each candidate's
  mean R, G and B (0-255), averaged over channels and requests: what a marketer can choose between;
- brightness range: the brightest minus the darkest candidate's mean luminance over all requests;
- motion: the mean absolute difference between consecutive frames (0-255).

The pretraining's own time is printed when this run builds the model (the first build of a recipe;
later ones come from the build cache under the settings' ``cache_dir``).

    python -m bench.tiny_wan_spread [--requests 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import time
import uuid

import numpy as np
from diffusers import WanPipeline

from adfame.settings import get_settings
from bench.report import figure, say
from inference.model import generate, load_pipeline
from inference.tiny_wan import CORPUS, PRETRAINING, build_key, cached_tiny_wan
from inference.variations import candidate_seeds, expand

CANDIDATES = 5
# The tokenizer corpus's scene prompts (its last lines list vocabulary, not scenes).
SCENE_PROMPTS = CORPUS[:38]


def candidate_videos(pipe: WanPipeline, requests: int, steps: int) -> list[list[np.ndarray]]:
    """The candidates of ``requests`` requests, each request with its own id, variations and seeds."""
    videos = []
    for i in range(requests):
        request_id = uuid.UUID(bytes=hashlib.sha256(f"spread-{i}".encode()).digest()[:16])
        prompts = expand(SCENE_PROMPTS[i % len(SCENE_PROMPTS)], CANDIDATES, request_id)
        seeds = list(candidate_seeds(request_id, CANDIDATES))
        result = generate(pipe, prompts, seeds, num_frames=16, height=64, width=64, num_inference_steps=steps)
        videos.append(result.videos)
    return videos


def report(label: str, requests: list[list[np.ndarray]]) -> None:
    means = [np.array([v.reshape(-1, 3).mean(axis=0) for v in videos]) for videos in requests]
    spread = np.mean([m.std(axis=0).mean() for m in means])
    luminance = [float(m @ np.array([0.299, 0.587, 0.114])) for ms in means for m in ms]
    motion = [np.abs(np.diff(v.astype(np.float32), axis=0)).mean() for videos in requests for v in videos]
    say(label)
    figure("within-request colour spread (0-255)", f"{spread:.2f}")
    figure("candidate brightness, darkest..brightest", f"{min(luminance):.0f}..{max(luminance):.0f}")
    figure("motion, mean |frame difference| (0-255)", f"{np.mean(motion):.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="tiny-wan's build seed")
    args = parser.parse_args(argv)
    steps = get_settings().inference_steps
    say(f"tiny-wan seed {args.seed}: {args.requests} requests x {CANDIDATES} candidates of 16x64x64")
    say(f"({steps} steps each)")
    for label, recipe in (("untrained", None), ("pretrained", PRETRAINING)):
        start = time.perf_counter()
        folder = cached_tiny_wan(args.seed, recipe)
        built = time.perf_counter() - start
        pipe = load_pipeline(str(folder), device="cpu")
        report(
            f"{label} (build {build_key(args.seed, recipe)}, ready in {built:.1f} s)",
            candidate_videos(pipe, args.requests, steps),
        )


if __name__ == "__main__":
    main()
