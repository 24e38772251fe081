"""GPU benchmark of generation at the real Wan 2.1 sizes, ready for a lent GPU, kept alive on the CPU.

For each architecture of inference/wan_configs.py, built with random weights of the real sizes (none can
be downloaded: time and memory are the real model's, the pixels are noise), at the shape a request asks
for (5 candidates, 16 frames at 480x832, 50 steps, bf16):

1. one batched call of 5 candidates against 5 calls of one;
2. FirstBlockCache and MagCache (``enable_cache``) against no cache: time, steps that ran the blocks,
   mean frame difference against the uncached candidates;
3. the peak accelerator memory of each part;
4. the system overhead through the real worker: ``Worker.serve`` on one request (routing, variations,
   ``ModelServer.generate``, mp4 encoding, storing), its ``total_s`` against the pipeline's
   ``denoise_s + decode_s``. A lent GPU machine runs no stack, so the videos go to a local folder in
   place of the object store and the final rows and event stay in memory (``bench.generation`` part 3
   measures Kafka and PostgreSQL on a stack).

    python -m bench.gpu --all                 # on a lent GPU: 1.3B in full, then 14B (~8 min on an H200)
    python -m bench.gpu --small               # the same code on the CPU in seconds (tests/unit/bench)

See bench/README.md (bench.gpu) for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import WanPipeline
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from adfame.repositories.requests import Outcome
from adfame.schemas import PromptRequest
from adfame.settings import get_settings
from bench.generation import frame_diff, request_inputs
from bench.report import figure, progress, say
from inference.model import (
    CacheKind,
    ModelServer,
    calibrate_mag_ratios,
    default_device,
    enable_cache,
    generate,
)
from inference.wan_configs import (
    ARCHITECTURES,
    CPU_SMALL,
    WAN21_T2V_1_3B,
    WAN21_T2V_14B,
    architecture,
    random_pipeline,
)
from inference.worker import Worker

FULL_SHAPE = {"num_frames": 16, "height": 480, "width": 832, "num_inference_steps": 50}
SMALL_SHAPE = {"num_frames": 5, "height": 32, "width": 32, "num_inference_steps": 4}
SECTIONS = ("batched", "sequential", "caches", "worker")
WARM_UP_STEPS = 2
GIB = 2**30


# ---- figures --------------------------------------------------------------------------------------
@dataclass
class CacheFigure:
    label: str
    kind: CacheKind
    threshold: float
    seconds: float  # one call: denoise + decode
    denoise_s: float
    computed_steps: int  # steps that ran the transformer's blocks (the rest reused a cached residual)
    frame_diff: float  # mean |pixel difference| (0-255) against the same candidates without cache


@dataclass
class WorkerFigure:
    total_s: float  # Worker.serve: received -> ready to commit
    pipeline_s: float  # denoise_s + decode_s
    overhead_s: float  # total_s - pipeline_s
    activate_s: float
    store_s: float  # encode and store the candidates side by side
    encode_s: float
    candidates_stored: int


@dataclass
class Figures:
    """Everything measured on one architecture; ``None`` where a part was skipped (``skipped`` says why)."""

    architecture: str
    device: str
    dtype: str
    transformer_params_b: float
    shape: dict[str, int]
    candidates: int
    build_s: float
    weights_gib: float  # accelerator memory held after building (CPU: parameter bytes)
    batched_s: float | None = None
    batched_denoise_s: float | None = None
    sequential_s: float | None = None
    max_pixel_diff_batched_vs_alone: int | None = None
    reference_diff: float | None = None  # two different candidates of one call, mean |diff|
    mag_calibration_s: float | None = None
    no_cache_s: float | None = None  # the uncached call again, warm, right before the cached ones
    no_cache_reproducible: bool | None = None  # it made the batched call's videos again
    caches: list[CacheFigure] = field(default_factory=list)
    worker: WorkerFigure | None = None
    peak_memory_gib: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


# ---- memory ---------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory of a part: the accelerator's allocator on CUDA, the process's peak RSS on the CPU.

    The CPU figure cannot be reset, so there it is the peak so far, not the part's own.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / GIB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # KiB on Linux

    def held_gib(self, pipe: WanPipeline) -> float:
        """What the loaded model holds: allocated device memory, or its parameters' bytes on the CPU."""
        if self.cuda:
            return torch.cuda.memory_allocated(self.device) / GIB
        parts = (pipe.transformer, pipe.text_encoder, pipe.vae)
        return sum(p.numel() * p.element_size() for part in parts for p in part.parameters()) / GIB


# ---- the parts ------------------------------------------------------------------------------------
def timed_generate(pipe: WanPipeline, prompts: list[str], seeds: list[int], shape: dict[str, int]) -> Any:
    """``generate`` and its wall time, the device synchronised on both sides (``generate`` does it)."""
    start = time.perf_counter()
    made = generate(pipe, prompts, seeds, **shape)
    return made, time.perf_counter() - start


def run_batched(pipe: WanPipeline, figures: Figures, shape: dict[str, int]) -> list[np.ndarray]:
    """A short warm-up (kernels chosen, memory pooled), then one timed call of all candidates."""
    prompts, seeds = request_inputs()
    with progress(f"warm-up ({WARM_UP_STEPS} steps), then one call of {len(prompts)}"):
        generate(pipe, prompts, seeds, **{**shape, "num_inference_steps": WARM_UP_STEPS})
        made, figures.batched_s = timed_generate(pipe, prompts, seeds, shape)
    figures.batched_denoise_s = made.timings["denoise_s"]
    videos = made.videos
    # What "a different video" measures on these weights: each candidate against the next one.
    figures.reference_diff = float(
        np.mean([frame_diff([a], [b]) for a, b in zip(videos, videos[1:] + videos[:1], strict=True)])
    )
    return videos


def run_cache(
    pipe: WanPipeline,
    kind: CacheKind,
    threshold: float,
    shape: dict[str, int],
    uncached: list[np.ndarray],
    mag_ratios: list[float] | None,
) -> CacheFigure:
    """One call with the cache on; the steps that ran the last block are counted by a hook on it."""
    prompts, seeds = request_inputs()
    steps = shape["num_inference_steps"]
    calls = [0]

    def count(*_: Any) -> None:
        calls[0] += 1

    # Without guidance the transformer runs once per step, so the last block's feed-forward runs
    # once per step unless the cache skipped the blocks.
    hook = pipe.transformer.blocks[-1].ffn.register_forward_hook(count)
    try:
        enable_cache(pipe, kind, threshold, num_inference_steps=steps, mag_ratios=mag_ratios)
        made, seconds = timed_generate(pipe, prompts, seeds, shape)
    finally:
        hook.remove()
        enable_cache(pipe, None)
    name = {"first_block": "FirstBlockCache", "mag": "MagCache"}[kind]
    return CacheFigure(
        label=f"{name}, threshold {threshold:g}",
        kind=kind,
        threshold=threshold,
        seconds=seconds,
        denoise_s=made.timings["denoise_s"],
        computed_steps=calls[0],
        frame_diff=frame_diff(uncached, made.videos),
    )


def run_caches(
    pipe: WanPipeline,
    figures: Figures,
    shape: dict[str, int],
    uncached: list[np.ndarray],
    thresholds: Sequence[float],
    in_budget: Callable[[str], bool],
) -> None:
    """The uncached call again (the speed-ups' baseline, as warm as the cached calls after it), then
    FirstBlockCache and MagCache (calibrated once at this shape) at each threshold the budget allows."""
    prompts, seeds = request_inputs()
    with progress("no cache (the baseline of the speed-ups)"):
        made, figures.no_cache_s = timed_generate(pipe, prompts, seeds, shape)
    figures.no_cache_reproducible = frame_diff(uncached, made.videos) == 0.0
    for threshold in thresholds:
        if in_budget(f"FirstBlockCache {threshold:g}"):
            with progress(f"FirstBlockCache, threshold {threshold:g}"):
                figures.caches.append(run_cache(pipe, "first_block", threshold, shape, uncached, None))
    if not in_budget("MagCache"):
        return
    with progress("MagCache calibration (one candidate)"):
        start = time.perf_counter()
        ratios = calibrate_mag_ratios(
            pipe,
            shape["num_inference_steps"],
            num_frames=shape["num_frames"],
            height=shape["height"],
            width=shape["width"],
        )
        figures.mag_calibration_s = time.perf_counter() - start
    for threshold in thresholds:
        if in_budget(f"MagCache {threshold:g}"):
            with progress(f"MagCache, threshold {threshold:g}"):
                figures.caches.append(run_cache(pipe, "mag", threshold, shape, uncached, ratios))


def run_sequential(
    pipe: WanPipeline, figures: Figures, shape: dict[str, int], batched: list[np.ndarray]
) -> None:
    """One call per candidate; each candidate must come out as in the batch (its own seeded noise)."""
    prompts, seeds = request_inputs()
    with progress(f"{len(prompts)} calls of one"):
        start = time.perf_counter()
        alone = [generate(pipe, [p], [s], **shape).videos[0] for p, s in zip(prompts, seeds, strict=True)]
        figures.sequential_s = time.perf_counter() - start
    figures.max_pixel_diff_batched_vs_alone = max(
        int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
        for a, b in zip(batched, alone, strict=True)
    )


# ---- the real worker, without a stack ---------------------------------------------------------------
class FolderStore:
    """The object store calls of the worker's video step, on a local folder: a lent GPU runs no stack."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def remove(self, bucket: str, key: str) -> None:
        (self.root / bucket / key).unlink(missing_ok=True)


class KeptEvents:
    """The producer calls of ``Worker.publish``: the completion events are kept, not sent to Kafka."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self.sent.append(value)

    def flush(self, timeout: float) -> None:
        """Nothing is buffered."""


class StacklessWorker(Worker):
    """The real ``Worker.serve`` (routing, variations, generation, encoding, storing, event); only the
    final rows stay in memory instead of PostgreSQL. Without a registry the router serves the base model."""

    def __init__(self, server: ModelServer, folder: Path, steps: int) -> None:
        settings = get_settings().model_copy(update={"inference_steps": steps})
        # No engine or consumer: without a registry the router asks no one, and serve() never consumes.
        super().__init__(
            settings,
            server,
            engine=None,  # type: ignore[arg-type]
            store=FolderStore(folder),  # type: ignore[arg-type]
            producer=KeptEvents(),  # type: ignore[arg-type]
            consumer=None,  # type: ignore[arg-type]
        )
        self.outcomes: list[Outcome] = []

    def record(self, request: PromptRequest, outcome: Outcome) -> None:
        """Keep the outcome (with the worker's timings) instead of writing it to PostgreSQL."""
        self.outcomes.append(outcome)


def run_worker(pipe: WanPipeline, arch_name: str, shape: dict[str, int], candidates: int) -> WorkerFigure:
    """One request through ``Worker.serve`` on the warm pipeline; the overhead from the worker's timings."""
    server = ModelServer.from_pipeline(pipe, f"random {arch_name}")
    request = PromptRequest(
        tenant="bench",
        prompt="a woman running in sneakers on a beach",
        num_candidates=candidates,
        num_frames=shape["num_frames"],
        height=shape["height"],
        width=shape["width"],
    )
    with tempfile.TemporaryDirectory(prefix="adfame-bench-gpu-") as folder:
        worker = StacklessWorker(server, Path(folder), shape["num_inference_steps"])
        try:
            with progress("one request through Worker.serve"):
                worker.serve(request, datetime.now(UTC), kafka_lag_s=None, route_seq=1)
        finally:
            worker.videos.close()
        stored = sum(1 for path in Path(folder).rglob("*.mp4") if path.stat().st_size > 0)
    (outcome,) = worker.outcomes
    if outcome.status != "succeeded":
        raise RuntimeError(f"the worker failed the bench request: {outcome.error}")
    t = outcome.timings
    pipeline_s = t["denoise_s"] + t["decode_s"]
    return WorkerFigure(
        total_s=t["total_s"],
        pipeline_s=pipeline_s,
        overhead_s=t["total_s"] - pipeline_s,
        activate_s=t["activate_s"],
        store_s=t["store_s"],
        encode_s=t["encode_s"],
        candidates_stored=stored,
    )


# ---- one architecture -------------------------------------------------------------------------------
@dataclass
class Plan:
    """What to run: the architectures with their sections, the shape, the device and the time allowed."""

    architectures: list[tuple[str, tuple[str, ...]]]
    shape: dict[str, int]
    device: torch.device
    dtype: torch.dtype
    thresholds: list[float]
    deadline: float  # time.monotonic() by which the run should end
    json_path: Path | None = None


def build(name: str, plan: Plan, memory: PeakMemory) -> tuple[WanPipeline, Figures]:
    """The random pipeline of ``name`` on the plan's device, and its figures so far."""
    arch = architecture(name)
    memory.reset()
    with progress(f"{name}: random weights of its sizes, built on {plan.device}"):
        start = time.perf_counter()
        pipe = random_pipeline(arch, plan.device, plan.dtype)
        build_s = time.perf_counter() - start
    figures = Figures(
        architecture=name,
        device=str(plan.device),
        dtype=str(plan.dtype).removeprefix("torch."),
        transformer_params_b=arch.transformer_params_b,
        shape=dict(plan.shape),
        candidates=len(request_inputs()[0]),
        build_s=build_s,
        weights_gib=memory.held_gib(pipe),
    )
    figures.peak_memory_gib["build"] = memory.peak_gib()
    return pipe, figures


def measure(name: str, sections: tuple[str, ...], plan: Plan) -> Figures:
    """Every part of ``sections`` on ``name`` while the plan's deadline allows (a part is about one call)."""
    memory = PeakMemory(plan.device)
    pipe, figures = build(name, plan, memory)

    def in_budget(part: str) -> bool:
        left = plan.deadline - time.monotonic()
        if figures.batched_s is not None and figures.batched_s > left:
            figures.skipped[part] = (
                f"one call takes {figures.batched_s:.0f} s, {left:.0f} s of the budget left"
            )
            return False
        return True

    def part(label: str, run: Callable[[], Any]) -> Any:
        memory.reset()
        result = run()
        figures.peak_memory_gib[label] = memory.peak_gib()
        return result

    batched = part("batched", lambda: run_batched(pipe, figures, plan.shape))
    if "sequential" in sections and in_budget("sequential"):
        part("sequential", lambda: run_sequential(pipe, figures, plan.shape, batched))
    if "caches" in sections:
        part("caches", lambda: run_caches(pipe, figures, plan.shape, batched, plan.thresholds, in_budget))
    if "worker" in sections and in_budget("worker"):
        figures.worker = part("worker", lambda: run_worker(pipe, name, plan.shape, figures.candidates))
    return figures


def release(device: torch.device) -> None:
    """Collect the last pipeline and give its blocks back, so the next build starts on an empty device."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build_peak_gib(name: str, dtype: torch.dtype) -> float:
    """GiB a build needs at its peak: the float32 transformer while the text encoder is already cast."""
    arch = architecture(name)
    with torch.device("meta"):
        from transformers import UMT5Config, UMT5EncoderModel

        encoder_params = sum(
            p.numel() for p in UMT5EncoderModel(UMT5Config(**arch.text_encoder)).parameters()
        )
    size = torch.finfo(dtype).bits // 8
    return (arch.transformer_params_b * 1e9 * 4 + encoder_params * size) / GIB


# ---- printing -------------------------------------------------------------------------------------
def print_figures(f: Figures) -> None:
    """One labelled line per figure, in the order of the module docstring; skipped parts say why."""
    shape = f.shape
    say(f"\n== {f.architecture}: {f.transformer_params_b:.2f} B transformer parameters, random weights ==")
    say(
        f"  {f.candidates} candidates, {shape['num_frames']} frames {shape['height']}x{shape['width']}, "
        f"{shape['num_inference_steps']} steps, {f.dtype} on {f.device} (VAE float32), "
        "no guidance (as the worker)"
    )
    figure("build (random init on the device)", f"{f.build_s:.1f} s, {f.weights_gib:.2f} GiB held")
    if f.batched_s is not None:
        figure(
            f"one call of {f.candidates} (batched)",
            f"{f.batched_s:.2f} s (denoise {f.batched_denoise_s:.2f} s)",
        )
    if f.sequential_s is not None and f.batched_s:
        figure(f"{f.candidates} calls of 1 (sequential)", f"{f.sequential_s:.2f} s")
        figure("sequential / batched", f"{f.sequential_s / f.batched_s:.2f}x")
        figure("largest pixel difference, batched vs alone", f"{f.max_pixel_diff_batched_vs_alone} (0-255)")
    if f.no_cache_s is not None:
        same = "the same videos" if f.no_cache_reproducible else "OTHER videos than the first call"
        figure("no cache, again before the caches", f"{f.no_cache_s:.2f} s ({same})")
    if f.mag_calibration_s is not None:
        figure("MagCache calibration (one candidate, once)", f"{f.mag_calibration_s:.2f} s")
    for cache in f.caches:
        say(f"  {cache.label}:")
        speed_up = f" = {f.no_cache_s / cache.seconds:.2f}x faster" if f.no_cache_s else ""
        figure("  call (vs no cache)", f"{cache.seconds:.2f} s{speed_up}")
        figure("  steps that ran the blocks", f"{cache.computed_steps} of {shape['num_inference_steps']}")
        figure("  mean |frame difference| vs no cache", f"{cache.frame_diff:.3f} (0-255)")
    if f.reference_diff is not None:
        figure("reference: two candidates of one call, |diff|", f"{f.reference_diff:.3f} (0-255)")
    if f.worker is not None:
        w = f.worker
        say("  one request through Worker.serve (videos to a local folder, rows and event in memory):")
        figure("  total_s (received -> ready to commit)", f"{w.total_s:.2f} s")
        figure("  pipeline = denoise_s + decode_s", f"{w.pipeline_s:.2f} s")
        figure(
            "  overhead = total_s - pipeline",
            f"{w.overhead_s:.3f} s = {100 * w.overhead_s / w.pipeline_s:.1f} % of the pipeline",
        )
        figure(
            "    activate_s / store_s (encode_s summed)",
            f"{w.activate_s:.3f} / {w.store_s:.3f} ({w.encode_s:.3f}) s",
        )
        figure("    mp4 files stored", str(w.candidates_stored))
    memory_kind = "CUDA allocator peak" if f.device.startswith("cuda") else "process peak RSS so far"
    for label, gib in f.peak_memory_gib.items():
        figure(f"peak memory, {label} ({memory_kind})", f"{gib:.2f} GiB")
    for label, why in f.skipped.items():
        say(f"  skipped {label}: {why}")


# ---- main -----------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options, checked: an unknown section, a bad threshold or a missing CUDA device is named."""
    parser = argparse.ArgumentParser(prog="bench.gpu", description=__doc__.splitlines()[0])
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--all", action="store_true", help="1.3B in full, then 14B (--sections-14b) if it fits"
    )
    modes.add_argument("--small", action="store_true", help="cpu-small at 32x32, 5 frames, 4 steps")
    modes.add_argument("--config", choices=sorted(ARCHITECTURES), default=WAN21_T2V_1_3B.name)
    parser.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"among {', '.join(SECTIONS)}")
    parser.add_argument("--sections-14b", default="batched", help="what --all runs on 14B")
    parser.add_argument("--thresholds", default="0.05,0.2", help="cache thresholds, comma-separated")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 50, --small 4)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip parts that would end past this")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    args.sections = _sections(parser, args.sections)
    args.sections_14b = _sections(parser, args.sections_14b)
    try:
        args.thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--thresholds: expected numbers like 0.05,0.2, got {args.thresholds!r}")
    args.device = torch.device(args.device or ("cpu" if args.small else default_device()))
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.steps is not None and args.steps < WARM_UP_STEPS:
        parser.error(f"--steps must be at least {WARM_UP_STEPS}")
    return args


def _sections(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose among {', '.join(SECTIONS)}")
    return chosen


def make_plan(args: argparse.Namespace) -> Plan:
    """The parsed options as a plan; the deadline starts now, so the imports do not count."""
    if args.all:
        architectures = [(WAN21_T2V_1_3B.name, args.sections), (WAN21_T2V_14B.name, args.sections_14b)]
    else:
        architectures = [(CPU_SMALL.name if args.small else args.config, args.sections)]
    shape = dict(SMALL_SHAPE if args.small else FULL_SHAPE)
    if args.steps is not None:
        shape["num_inference_steps"] = args.steps
    return Plan(
        architectures=architectures,
        shape=shape,
        device=args.device,
        dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32,
        thresholds=args.thresholds,
        deadline=time.monotonic() + args.budget_s,
        json_path=args.json,
    )


def why_not(name: str, plan: Plan, done: list[Figures]) -> str | None:
    """Why ``name`` cannot run now: its build would not fit the free memory, or its call the time left."""
    if plan.device.type == "cuda":
        free = torch.cuda.mem_get_info(plan.device)[0] / GIB
        needed = build_peak_gib(name, plan.dtype)
        if needed > free:
            return f"building it needs about {needed:.0f} GiB, {free:.0f} GiB free"
    measured = [f for f in done if f.batched_s is not None]
    if measured:
        last = measured[-1]
        estimate = last.batched_s * architecture(name).transformer_params_b / last.transformer_params_b
        left = plan.deadline - time.monotonic()
        if estimate > left:
            return f"one call would take about {estimate:.0f} s (from {last.architecture}), {left:.0f} s left"
    return None


def run(plan: Plan) -> list[Figures]:
    """Every architecture of the plan, printed as it ends; one that does not fit is said and skipped."""
    done: list[Figures] = []
    for name, sections in plan.architectures:
        reason = why_not(name, plan, done)
        if reason is not None:
            say(f"\n== {name}: skipped: {reason}")
            continue
        try:
            figures = measure(name, sections, plan)
        except torch.OutOfMemoryError as exc:
            say(f"\n== {name}: did not fit in the device's memory: {str(exc).splitlines()[0]}")
            continue
        finally:
            release(plan.device)  # the pipeline went with measure's frame: give its memory back now
        print_figures(figures)
        done.append(figures)
    if plan.json_path is not None:
        plan.json_path.write_text(json.dumps([asdict(f) for f in done], indent=2) + "\n")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    started = time.monotonic()
    plan = make_plan(args)
    device = torch.cuda.get_device_name(plan.device) if plan.device.type == "cuda" else "CPU"
    say(
        f"bench.gpu: {device}, torch {torch.__version__}, {os.cpu_count()} CPU cores. Random weights "
        "(transformer, text encoder and VAE; no weights can be downloaded): at the real sizes the times and "
        "memory are the real model's, the videos are noise"
    )
    figures = run(plan)
    say(f"\nbench.gpu done in {time.monotonic() - started:.0f} s")
    return 0 if figures else 1


if __name__ == "__main__":
    sys.exit(main())
