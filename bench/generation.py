"""Benchmark of the generation service, all figures from one run.

1. Batched vs sequential candidates: 5 candidates in one ``generate`` call against 5 calls of one, on tiny-wan
   and on a larger random transformer (what the worker gains by batching a request).
2. Cache speed-up: FirstBlockCache and MagCache (``enable_cache``) against no cache on a larger random Wan
   transformer where the transformer dominates the time, with the mean frame difference they cost.
3. System overhead on the real stack: Kafka-to-durable time minus pipeline time, as a share of pipeline time
   (goal: at most 5 %), per request through ``inference.jobs.submit`` and one ``adfame worker``; then the
   encoding of 5 candidates alone, the floor of that overhead on this machine.
4. Throughput of the same batch of requests with 1 and with 2 workers in the consumer group.

Parts 1 and 2 need no service; 3 and 4 need a healthy stack (``adfame stack up``) and no other consumer on
``adfame.prompts``: ``python -m bench.generation [--requests 10] [--device cpu|cuda] [--sections 1,2,3,4]``.
See ``bench/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import WanPipeline, WanTransformer3DModel
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from adfame.contracts import GENERATIONS_TOPIC, MODELS_BUCKET, PROMPTS_TOPIC, VIDEOS_BUCKET
from adfame.repositories.requests import batch_end, count_finished, delete_finished, get_job
from adfame.schemas import PromptRequest
from adfame.settings import Settings, get_settings
from adfame.waiting import wait_for
from bench.report import LABEL_WIDTH, figure, progress, say
from inference.model import (
    CacheKind,
    calibrate_mag_ratios,
    default_device,
    default_dtype,
    enable_cache,
    generate,
    load_pipeline,
)
from inference.tiny_wan import TEXT_DIM, build_tiny_wan_pipeline
from inference.variations import candidate_seeds, expand

IDLE_PAUSE_S = 0.1  # between the requests of part 3
OVERHEAD_GOAL = 0.05  # (Kafka-to-durable - pipeline) / pipeline, issue 4

# What a request asks for by default (PromptRequest), so that parts 1 and 2 time the work a worker does.
CANDIDATES = PromptRequest.model_fields["num_candidates"].default
FRAMES = PromptRequest.model_fields["num_frames"].default
HEIGHT = PromptRequest.model_fields["height"].default
WIDTH = PromptRequest.model_fields["width"].default
PROMPTS = (
    "a woman running in sneakers on a beach",
    "a basketball player dunks in an empty stadium",
    "close-up of a sports drink bottle covered in cold droplets",
    "a cyclist climbs a mountain road at dawn",
)
BENCH_REQUEST_ID = uuid.UUID(int=4)  # fixes the variations and seeds of parts 1 and 2
TENANT = "bench"

# The larger random transformer: tiny-wan's text encoder, VAE and scheduler around a Wan transformer with
# 8 blocks of width 256 (4 heads of 64), about 9 M parameters, so the transformer does most of the work
# and a skipped step saves real time, while a call of 5 candidates x 20 steps stays a few seconds on 2 cores.
BIG_TRANSFORMER: dict[str, Any] = {
    "num_attention_heads": 4,
    "attention_head_dim": 64,
    "ffn_dim": 1024,
    "num_layers": 8,
}
BIG_SEED = 0

WORKER_START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0


# ---- printing ------------------------------------------------------------------------------------
def spread(values: Sequence[float], fmt: str = "{:.3f}", unit: str = " s") -> str:
    """Mean, p50 and p95 of ``values`` (linear interpolation between samples)."""
    mean, p50, p95 = np.mean(values), np.percentile(values, 50), np.percentile(values, 95)
    return " / ".join(fmt.format(v) for v in (mean, p50, p95)) + unit


def median_range(values: Sequence[float]) -> str:
    return f"{np.median(values):.3f} s ({min(values):.3f}..{max(values):.3f})"


# ---- pipelines -----------------------------------------------------------------------------------
def as_served(pipe: WanPipeline, folder: Path, device: str) -> WanPipeline:
    """Save ``pipe`` and load it back with ``load_pipeline``, so it runs with the dtypes a worker uses."""
    pipe.save_pretrained(folder, safe_serialization=True)
    return load_pipeline(str(folder), device)


def build_big_pipeline(tiny: WanPipeline, seed: int = BIG_SEED) -> WanPipeline:
    """tiny-wan with its transformer replaced by a larger one, initialised from ``seed`` (reproducible)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            in_channels=16,
            out_channels=16,
            text_dim=TEXT_DIM,
            freq_dim=256,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            **BIG_TRANSFORMER,
        )
    pipe = WanPipeline(
        tokenizer=tiny.tokenizer,
        text_encoder=tiny.text_encoder,
        vae=tiny.vae,
        transformer=transformer,
        scheduler=tiny.scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def params_m(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def request_inputs() -> tuple[list[str], list[int]]:
    """The candidate prompts and seeds a worker would make for one request (fixed id, so every run alike)."""
    prompts = expand(PROMPTS[0], CANDIDATES, BENCH_REQUEST_ID, get_settings().variation_strategy)
    return prompts, list(candidate_seeds(BENCH_REQUEST_ID, CANDIDATES))


def frame_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Mean absolute difference of the pixels (0-255) of two sets of videos."""
    return float(
        np.mean(
            [np.abs(x.astype(np.float32) - y.astype(np.float32)).mean() for x, y in zip(a, b, strict=True)]
        )
    )


# ---- 1. batched vs sequential --------------------------------------------------------------------
@dataclass
class BatchTiming:
    model: str
    steps: int
    batched: list[float] = field(default_factory=list)
    sequential: list[float] = field(default_factory=list)
    max_diff: int = 0  # largest pixel difference between a candidate made in the batch and alone


def time_batching(pipe: WanPipeline, model: str, steps: int, repeats: int) -> BatchTiming:
    """One call of all candidates against one call per candidate, alternated so both see the same load."""
    prompts, seeds = request_inputs()
    shape = {"num_frames": FRAMES, "height": HEIGHT, "width": WIDTH, "num_inference_steps": steps}
    result = BatchTiming(model, steps)

    def batched() -> list[np.ndarray]:
        return generate(pipe, prompts, seeds, **shape).videos

    def sequential() -> list[np.ndarray]:
        return [generate(pipe, [p], [s], **shape).videos[0] for p, s in zip(prompts, seeds, strict=True)]

    with progress(f"{model}: warm-up, then {repeats} x (batched, sequential)"):
        batched(), sequential()
        for _ in range(repeats):
            start = time.perf_counter()
            together = batched()
            result.batched.append(time.perf_counter() - start)
            start = time.perf_counter()
            alone = sequential()
            result.sequential.append(time.perf_counter() - start)
    result.max_diff = max(
        int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
        for a, b in zip(together, alone, strict=True)
    )
    return result


def print_batching(timing: BatchTiming, repeats: int) -> None:
    say(
        f"  {timing.model}: {CANDIDATES} candidates, {FRAMES} frames {HEIGHT}x{WIDTH}, {timing.steps} steps; "
        f"{repeats} repeat(s) after a warm-up, median (min..max)"
    )
    figure(f"  one call of {CANDIDATES} (batched)", median_range(timing.batched))
    figure(f"  {CANDIDATES} calls of 1 (sequential)", median_range(timing.sequential))
    ratio = np.median(timing.sequential) / np.median(timing.batched)
    figure("  sequential / batched time", f"{ratio:.2f}x (batching {'faster' if ratio > 1 else 'slower'})")
    figure("  largest pixel difference, batched vs alone", f"{timing.max_diff} (0-255)")


# ---- 2. cache speed-up ---------------------------------------------------------------------------
@dataclass
class CacheRun:
    label: str
    kind: CacheKind | None
    threshold: float
    totals: list[float] = field(default_factory=list)
    denoise: list[float] = field(default_factory=list)
    computed_steps: list[int] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)
    reproducible: bool = True  # every repeat gave the first repeat's videos


def time_caches(
    pipe: WanPipeline, steps: int, thresholds: Sequence[float], repeats: int
) -> tuple[list[CacheRun], float, float]:
    """Each cache setting on the same candidates, the settings alternated in every repeat.

    Returns the runs (the first is no cache), MagCache's calibration time and the frame difference between
    two different seeds without cache (what "a different video" measures on this model).
    """
    prompts, seeds = request_inputs()
    shape = {"num_frames": FRAMES, "height": HEIGHT, "width": WIDTH, "num_inference_steps": steps}
    runs = [CacheRun("no cache", None, 0.0)]
    for kind, name in (("first_block", "FirstBlockCache"), ("mag", "MagCache")):
        runs += [CacheRun(f"{name}, threshold {t:g}", kind, t) for t in thresholds]

    # The last block's feed-forward runs once per step unless the cache skips the blocks (no guidance:
    # one transformer pass per step), so counting its calls counts the steps really computed.
    calls = [0]

    def count(*_: Any) -> None:
        calls[0] += 1

    with progress(f"MagCache calibration ({steps} steps)"):
        start = time.perf_counter()
        ratios = calibrate_mag_ratios(pipe, steps)
        calibration_s = time.perf_counter() - start
    hook = pipe.transformer.blocks[-1].ffn.register_forward_hook(count)
    try:
        with progress(
            f"warm-up, then {repeats} x {len(runs)} cache settings",
            lambda: f"{sum(len(r.totals) for r in runs)} of {repeats * len(runs)} calls",
        ):
            generate(pipe, prompts, seeds, **shape)
            for _ in range(repeats):
                for run in runs:
                    enable_cache(pipe, run.kind, run.threshold, num_inference_steps=steps, mag_ratios=ratios)
                    calls[0] = 0
                    start = time.perf_counter()
                    made = generate(pipe, prompts, seeds, **shape)
                    run.totals.append(time.perf_counter() - start)
                    run.denoise.append(made.timings["denoise_s"])
                    run.computed_steps.append(calls[0])
                    if not run.videos:
                        run.videos = made.videos
                    elif frame_diff(run.videos, made.videos) != 0.0:
                        run.reproducible = False
            enable_cache(pipe, None)
            other_seeds = [seed + 1000 for seed in seeds]
            reference = frame_diff(runs[0].videos, generate(pipe, prompts, other_seeds, **shape).videos)
    finally:
        hook.remove()
        enable_cache(pipe, None)
    return runs, calibration_s, reference


def print_caches(
    runs: list[CacheRun], calibration_s: float, reference: float, steps: int, repeats: int
) -> None:
    big = runs[0]
    say(
        f"  transformer: {BIG_TRANSFORMER['num_layers']} blocks of width "
        f"{BIG_TRANSFORMER['num_attention_heads'] * BIG_TRANSFORMER['attention_head_dim']}, "
        f"random (seed {BIG_SEED})"
    )
    say(
        f"  {CANDIDATES} candidates, {FRAMES} frames {HEIGHT}x{WIDTH}, {steps} steps, one call each; "
        f"{repeats} repeat(s) after a warm-up, medians"
    )
    figure("MagCache calibration (once, not timed below)", f"{calibration_s:.2f} s")
    base_total, base_denoise = np.median(big.totals), np.median(big.denoise)
    figure(
        "no cache: call (denoise + decode)",
        f"{base_total:.3f} s, denoise {base_denoise:.3f} s = {100 * base_denoise / base_total:.0f} % of it",
    )
    for run in runs[1:]:
        total, denoise = np.median(run.totals), np.median(run.denoise)
        computed = sorted(set(run.computed_steps))
        say(f"  {run.label}:")
        figure("  call / denoise", f"{total:.3f} s / {denoise:.3f} s")
        figure(
            "  speed-up over no cache: call / denoise",
            f"{base_total / total:.2f}x / {base_denoise / denoise:.2f}x",
        )
        figure("  steps that ran the blocks", f"{'/'.join(map(str, computed))} of {steps}")
        figure("  mean |frame difference| vs no cache", f"{frame_diff(big.videos, run.videos):.3f} (0-255)")
        if not run.reproducible:
            say("  ! its repeats did not all give the same videos")
    if not big.reproducible:
        say("  ! the uncached repeats did not all give the same videos")
    figure("reference: two seeds, no cache, mean |diff|", f"{reference:.3f} (0-255)")


# ---- 3 and 4. the real stack ---------------------------------------------------------------------
def stack_problem(settings: Settings) -> str | None:
    """Why the stack cannot be measured (as ``adfame stack status`` sees it), or None."""
    from adfame.stack.manager import Stack

    try:
        rows = Stack(settings).status()
    except Exception as exc:  # a status that cannot even be read is an unhealthy stack
        return f"`adfame stack status` failed: {exc}"
    bad = [f"{row.name} {row.state}" for row in rows if not row.healthy]
    return f"not healthy: {', '.join(bad)}" if bad else None


def stack_blocker(settings: Settings) -> str | None:
    """Why parts 3 and 4 cannot be measured fairly here, or None."""
    from adfame.messaging import create_admin

    problem = stack_problem(settings)
    if problem:
        return f"the stack is {problem} (`adfame stack status`; start it with `adfame stack up`)"
    admin = create_admin(settings)
    try:
        intruding = prompt_consumers(admin)
        if intruding:
            groups = ", ".join(f"group {g}: {n} live member(s)" for g, n in intruding.items())
            return (
                f"consumers already on adfame.prompts would take part of the requests ({groups}); "
                "stop them first (the stack's own: `adfame stack down worker`)"
            )
        lag = group_lag(settings, admin, settings.worker_group)
        if lag:
            return f"{lag} messages wait in group {settings.worker_group}; a worker would process them too"
    finally:
        admin.close()
    return None


def prompt_consumers(admin: Any) -> dict[str, int]:
    """Live members of every consumer group on ``adfame.prompts``: each would take a share of our requests."""
    active = [g["group_id"] for g in admin.list_groups() if g.get("group_state") not in ("Empty", "Dead")]
    members: dict[str, int] = {}
    for group_id, group in (admin.describe_groups(active) if active else {}).items():
        on_prompts = [
            m
            for m in group.get("members") or []
            if PROMPTS_TOPIC in (m.get("member_metadata") or {}).get("topics", [])
        ]
        if on_prompts:
            members[group_id] = len(on_prompts)
    return members


def group_lag(settings: Settings, admin: Any, group: str) -> int:
    """Messages on ``adfame.prompts`` the group has not committed yet: a new worker would process them."""
    from kafka import TopicPartition

    from adfame.messaging import create_consumer

    probe = create_consumer(f"bench-probe-{uuid.uuid4().hex[:8]}", [], settings)
    try:
        parts = [TopicPartition(PROMPTS_TOPIC, p) for p in sorted(probe.partitions_for_topic(PROMPTS_TOPIC))]
        ends, starts = probe.end_offsets(parts), probe.beginning_offsets(parts)
    finally:
        probe.close()
    committed = admin.list_group_offsets({group: None}).get(group, {})
    lag = 0
    for tp in parts:
        done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
        lag += max(0, ends[tp] - done)
    return lag


def balanced_ids(count: int, partitions: int) -> list[uuid.UUID]:
    """Request ids spread evenly over the topic's partitions, in partition order round after round.

    The producer picks the partition from the key (the request id) with murmur2, as Kafka's Java client
    does; with even shares, two workers of a group (three partitions each) get the same number of requests.
    """
    from kafka.partitioner.default import murmur2

    wanted = [count // partitions + (p < count % partitions) for p in range(partitions)]
    slots: list[list[uuid.UUID]] = [[] for _ in range(partitions)]
    while any(len(slots[p]) < wanted[p] for p in range(partitions)):
        request_id = uuid.uuid4()
        partition = (murmur2(str(request_id).encode()) & 0x7FFFFFFF) % partitions
        if len(slots[partition]) < wanted[partition]:
            slots[partition].append(request_id)
    return [slot[i] for i in range(max(wanted)) for slot in slots if i < len(slot)]


def bench_request(request_id: uuid.UUID, index: int) -> PromptRequest:
    """Request ``index`` of a run: the same prompt and seed for the same index, so batches match."""
    return PromptRequest(
        request_id=request_id, tenant=TENANT, prompt=PROMPTS[index % len(PROMPTS)], seed=1000 + index
    )


class Workers:
    """The ``adfame worker`` processes this run starts; ``stop`` ends them with SIGTERM and waits."""

    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.log_dir = log_dir
        self.env = {**os.environ, **env}
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, **env: str) -> None:
        log_path = self.log_dir / f"worker-{len(self.procs) + 1}-{uuid.uuid4().hex[:4]}.log"
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "adfame"), "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **env},
                start_new_session=True,  # a Ctrl-C of the benchmark reaches the workers through stop()
            )
        self.procs.append((proc, log_path))

    def check_alive(self) -> None:
        for number, (proc, log_path) in enumerate(self.procs, 1):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker {number} exited with {proc.returncode}; its log ends:\n{tail}")

    def handled(self, request_ids: Sequence[uuid.UUID]) -> list[int]:
        """How many of ``request_ids`` each worker generated, from the line it logs per request."""
        logs = [log_path.read_text(errors="replace") for _, log_path in self.procs]
        return [sum(f"request {rid}: " in text for rid in request_ids) for text in logs]

    def stop(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for number, (proc, _) in enumerate(self.procs, 1):
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                say(
                    f"  ! worker {number} (pid {proc.pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s: killed"
                )
                proc.kill()
                proc.wait()
        self.procs.clear()


class EventWatcher:
    """Completion events on ``adfame.generations`` from now on: when each request's results were durable.

    The worker builds the event after the transaction with the candidate rows has committed (and after the
    uploads), so the event's ``finished_at`` marks the results being durable, on the worker's clock.
    """

    def __init__(self, settings: Settings):
        from kafka import TopicPartition

        from adfame.messaging import create_consumer

        self.consumer = create_consumer(f"bench-events-{uuid.uuid4().hex[:8]}", [], settings)
        parts = [
            TopicPartition(GENERATIONS_TOPIC, p)
            for p in sorted(self.consumer.partitions_for_topic(GENERATIONS_TOPIC))
        ]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end now, before any request of ours can complete
            self.consumer.position(tp)
        self.finished: dict[str, datetime] = {}
        self.seen: set[str] = set()  # every request with an event, whatever its status

    def collect(
        self,
        request_ids: Sequence[uuid.UUID],
        timeout_s: float = 30.0,
        still_alive: Callable[[], None] | None = None,
    ) -> dict[str, datetime]:
        """Wait for the requests' completion events; the durable times of those that succeeded.

        Blocking on the topic rather than polling PostgreSQL keeps the benchmark's own load off the
        machine while a request is measured. ``still_alive`` raises when the workers died, which ends
        the wait at once with their error.
        """
        wanted = {str(rid) for rid in request_ids}

        def seen() -> int:
            if not wanted <= self.seen:
                if still_alive is not None:
                    still_alive()
                self._read_events()
            return len(wanted & self.seen)

        # No pause between questions: each one blocks on the topic for up to half a second itself.
        wait_for(
            seen,
            what=f"completion events of all {len(wanted)} requests",
            timeout_s=timeout_s,
            interval_s=0,
            done=lambda count: count == len(wanted),
        )
        return {rid: self.finished[rid] for rid in wanted if rid in self.finished}

    def _read_events(self) -> None:
        """The events that arrive within half a second: every request seen, the successes' durable times."""
        from adfame.messaging import decode_json

        for records in self.consumer.poll(timeout_ms=500).values():
            for record in records:
                event = decode_json(record.value)
                self.seen.add(event["request_id"])
                if event.get("status") == "succeeded":
                    self.finished[event["request_id"]] = datetime.fromisoformat(event["finished_at"])

    def close(self) -> None:
        self.consumer.close()


@dataclass
class StackRun:
    """What parts 3 and 4 share: clients, the workers, every request submitted (for the clean-up)."""

    settings: Settings
    engine: Any
    producer: Any
    admin: Any
    workers: Workers
    partitions: int
    submitted: list[uuid.UUID] = field(default_factory=list)

    def submit(self, request: PromptRequest) -> None:
        from inference.jobs import submit

        submit(request, engine=self.engine, producer=self.producer)
        self.submitted.append(request.request_id)

    def wait_done(self, request_ids: Sequence[uuid.UUID], timeout_s: float, poll_s: float = 0.1) -> None:
        """Wait until every request has ended; a worker that died ends the wait at once with its log."""

        def finished() -> int:
            count = count_finished(self.engine, request_ids)
            if count < len(request_ids):
                self.workers.check_alive()
            return count

        wait_for(
            finished,
            what=f"all {len(request_ids)} requests finished",
            timeout_s=timeout_s,
            interval_s=poll_s,
            done=lambda count: count == len(request_ids),
        )

    def wait_members(self, count: int, timeout_s: float = WORKER_START_TIMEOUT_S) -> float:
        """Wait until the worker group has ``count`` members and a settled assignment; returns seconds.

        A worker that died ends the wait at once with its log: the group would never settle.
        """
        group, start = self.settings.worker_group, time.monotonic()
        settled = ("Stable", count)

        def group_state() -> tuple[str | None, int]:
            described = self.admin.describe_groups([group]).get(group, {})
            state = (described.get("group_state"), len(described.get("members") or []))
            if state != settled:
                self.workers.check_alive()
            return state

        wait_for(
            group_state,
            what=f"group {group} stable with {count} members (state, members)",
            timeout_s=timeout_s,
            done=lambda state: state == settled,
        )
        return time.monotonic() - start

    def warn_of_intruders(self, own: int) -> None:
        """Say so when ``adfame.prompts`` has consumers besides our ``own`` workers: they skew the figures."""
        members = prompt_consumers(self.admin)
        members[self.settings.worker_group] = members.get(self.settings.worker_group, 0) - own
        extra = ", ".join(f"{g}: {n}" for g, n in members.items() if n > 0)
        if extra:
            say(f"  ! other consumers on adfame.prompts joined meanwhile ({extra}): figures are disturbed")

    def makespan(self, request_ids: Sequence[uuid.UUID], started_epoch: float) -> tuple[float, int]:
        """Seconds from ``started_epoch`` to the last request's durable finish, and how many failed."""
        end = batch_end(self.engine, request_ids)
        if end.last_finished_at is None:
            raise RuntimeError(f"none of the {len(request_ids)} requests has finished")
        return end.last_finished_at.timestamp() - started_epoch, end.failed

    def clean_up(self) -> None:
        """Remove this run's requests (rows cascade to candidates) and videos, when they are finished."""
        from adfame.storage import ObjectStore

        if not self.submitted:
            return
        finished = delete_finished(self.engine, self.submitted)
        unfinished = set(self.submitted) - set(finished)
        store = ObjectStore(self.settings)
        removed = 0
        for rid in finished:
            for obj in store.list(VIDEOS_BUCKET, f"{TENANT}/{rid}/"):
                store.remove(VIDEOS_BUCKET, obj.key)
                removed += 1
        say(f"  removed {len(finished)} bench requests (rows and {removed} videos)")
        if unfinished:
            say(f"  ! kept {len(unfinished)} unfinished requests (a worker may still redeliver them)")


def run_stack(args: argparse.Namespace, settings: Settings) -> None:
    """Parts 3 and 4 on the real stack, or a line saying why they are skipped."""
    if not args.sections & {3, 4}:
        return
    blocker = stack_blocker(settings)
    if blocker:
        say(f"\n== 3. and 4. on the real stack: skipped: {blocker}")
        return
    from adfame import db
    from adfame.messaging import create_admin, create_producer
    from inference.model import init_default_model

    admin = create_admin(settings)
    applied = db.upgrade(db.engine())
    model_uri = init_default_model(settings)
    producer = create_producer(settings)
    log_dir = Path(tempfile.mkdtemp(prefix="adfame-bench-gen-"))
    env = {
        "ADFAME_MODEL_SOURCE": model_uri,
        "ADFAME_DEVICE": args.device,
        "ADFAME_WORKER_GROUP": settings.worker_group,
    }
    run = StackRun(
        settings,
        db.engine(),
        producer,
        admin,
        Workers(log_dir, env),
        len(producer.partitions_for(PROMPTS_TOPIC)),
    )
    watcher = EventWatcher(settings)
    try:
        figure("stack", "healthy (`adfame stack status`)" + (f"; applied {applied}" if applied else ""))
        figure(
            "worker settings",
            f"model {model_uri}, {settings.inference_steps} steps, cache "
            f"{settings.inference_cache or 'off'}, device {args.device}, group {settings.worker_group}",
        )
        figure("worker logs", str(log_dir))
        if 3 in args.sections:
            say("\n== 3. System overhead on the real stack ==")
            tiny = measure_overhead(run, watcher, args.requests, "tiny-wan")
            with published_larger_model(settings) as larger_uri:
                larger = measure_overhead(
                    run,
                    watcher,
                    args.requests,
                    "larger random transformer",
                    # Its own registry name: no LoRA made for tiny-wan is applied to it.
                    ADFAME_MODEL_SOURCE=larger_uri,
                    ADFAME_REGISTERED_MODEL=f"bench-larger-{uuid.uuid4().hex[:8]}",
                )
            print_overhead_summary(tiny, larger)
            print_encoding_floor(tiny)
        if 4 in args.sections:
            measure_throughput(run, args.batch)
    finally:
        say("\n  stopping the workers (SIGTERM) ...")
        run.workers.stop()
        watcher.close()
        producer.close()
        admin.close()
        if args.keep:
            say(f"  kept the bench requests (tenant {TENANT!r}): {len(run.submitted)}")
        else:
            run.clean_up()


def start_first_worker(run: StackRun, **env: str) -> None:
    """One worker, warm: its model loaded, in the group, one request done."""
    run.workers.start(**env)
    with progress("worker 1: start, join the group, one warm-up request"):
        start = time.monotonic()
        warm_up = bench_request(uuid.uuid4(), 0)
        run.submit(warm_up)
        run.wait_done([warm_up.request_id], WORKER_START_TIMEOUT_S)
        joined_s = time.monotonic() - start
    figure("worker start to first request done", f"{joined_s:.1f} s (model load, group join, warm-up)")
    run.warn_of_intruders(own=1)


@contextmanager
def published_larger_model(settings: Settings) -> Iterator[str]:
    """The larger random transformer published like tiny-wan, under a bench prefix removed afterwards."""
    from adfame.storage import ObjectStore
    from inference.model import publish_model

    store = ObjectStore(settings)
    prefix = f"bench/larger-random-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="adfame-bench-larger-") as tmp:
        build_big_pipeline(build_tiny_wan_pipeline(seed=0)).save_pretrained(tmp, safe_serialization=True)
        uri = publish_model(Path(tmp), store, MODELS_BUCKET, prefix)
    try:
        yield uri
    finally:
        for obj in store.list(MODELS_BUCKET, prefix + "/"):
            store.remove(MODELS_BUCKET, obj.key)


def measure_overhead(
    run: StackRun, watcher: EventWatcher, count: int, model: str, **worker_env: str
) -> OverheadRun | None:
    """``count`` requests one at a time through a fresh worker serving ``model``; None if none succeeded."""
    say(f"\n  -- {model} --")
    start_first_worker(run, **worker_env)

    requests: list[PromptRequest] = []
    with progress(f"{count} requests, one at a time", lambda: f"{len(requests)} submitted"):
        for index in range(count):
            request = bench_request(uuid.uuid4(), index)
            run.submit(request)
            requests.append(request)
            watcher.collect([request.request_id], WORKER_START_TIMEOUT_S, run.workers.check_alive)
            # The event precedes the worker's offset commit: let it finish and wait on the topic again,
            # so the next request measures delivery to an idle worker, not queueing behind that commit.
            time.sleep(IDLE_PAUSE_S)
    run.workers.stop()  # the next measurement starts its own
    events = watcher.collect([r.request_id for r in requests])
    jobs = {r.request_id: get_job(run.engine, r.request_id) for r in requests}
    failed = [job for job in jobs.values() if job is None or job.status != "succeeded"]
    for job in failed:
        say(f"  ! request failed: {job.error if job else 'no row'}")
    rows: list[dict[str, float]] = []
    versions: set[str] = set()
    for request in requests:
        job = jobs[request.request_id]
        finished = events.get(str(request.request_id))
        if job is None or job.status != "succeeded" or finished is None:
            continue
        t = job.timings
        # The worker received the message at submitted_at + queue_wait_s; the event's finished_at is
        # stamped after the rows committed. Both clocks are this machine's.
        durable_s = (finished - request.submitted_at).total_seconds() - t["queue_wait_s"]
        rows.append(
            {
                "pipeline": t["denoise_s"] + t["decode_s"],
                "kafka_lag": t["kafka_lag_s"],
                "before": t["total_s"] - t["store_s"] - t["denoise_s"] - t["decode_s"],
                "store": t["store_s"],
                "encode": t["encode_s"],
                "upload": t["upload_s"],
                "commit": durable_s - t["total_s"],
                "kafka_to_durable": t["kafka_lag_s"] + durable_s,
            }
        )
        versions.add(f"{job.model_version} (route {job.route})")
    if len(rows) < count:
        say(f"  ! {count - len(rows)} of {count} requests failed or sent no completion event: left out")
    if not rows:
        say("  no request succeeded: no figure")
        return None

    def column(name: str) -> np.ndarray:
        return np.array([row[name] for row in rows])

    pipeline = column("pipeline")
    overhead = column("kafka_to_durable") - pipeline
    share = overhead / pipeline
    figure(
        "requests measured",
        f"{len(rows)} of {count}, one in flight at a time; {CANDIDATES} candidates, {FRAMES} frames "
        f"{HEIGHT}x{WIDTH}",
    )
    figure("model served", ", ".join(sorted(versions)))
    say(f"  {'':<{LABEL_WIDTH}} mean / p50 / p95")
    figure("Kafka-to-durable (message timestamp -> commit)", spread(column("kafka_to_durable")))
    figure("  pipeline = denoise_s + decode_s", spread(pipeline))
    figure("  Kafka timestamp -> worker has the message", spread(column("kafka_lag")))
    figure("  claim, routing, variations", spread(column("before")))
    figure("  encode + upload, side by side (store_s)", spread(column("store")))
    figure("    encode_s, summed over the candidates", spread(column("encode")))
    figure("    upload_s, summed over the candidates", spread(column("upload")))
    figure("  rows committed, event built", spread(column("commit")))
    figure("overhead = Kafka-to-durable - pipeline", spread(overhead))
    figure(
        f"  as a share of pipeline (goal <= {OVERHEAD_GOAL:.0%})",
        spread(100 * share, "{:.1f}", " %")
        + f"  {'PASS' if float(np.mean(share)) <= OVERHEAD_GOAL else 'MISS'} (on the mean)",
    )
    return OverheadRun(model, float(np.mean(pipeline)), float(np.mean(overhead)))


@dataclass(frozen=True)
class OverheadRun:
    model: str
    pipeline_s: float
    overhead_s: float


def print_overhead_summary(*runs: OverheadRun | None) -> None:
    """The overhead is a fixed cost per request: where the goal holds depends on the pipeline's time."""
    measured = [run for run in runs if run is not None]
    if not measured:
        return
    say("\n  -- summary (means) --")
    for run in measured:
        share = run.overhead_s / run.pipeline_s
        figure(
            f"{run.model}",
            f"overhead {1000 * run.overhead_s:.0f} ms on a {run.pipeline_s:.3f} s pipeline = "
            f"{100 * share:.1f} % {'PASS' if share <= OVERHEAD_GOAL else 'MISS'}",
        )
    fixed = float(np.mean([run.overhead_s for run in measured]))
    figure(
        f"pipeline time for which {fixed * 1000:.0f} ms is {OVERHEAD_GOAL:.0%}",
        f"{fixed / OVERHEAD_GOAL:.2f} s (5 candidates, 16 frames 64x64)",
    )


def smooth_clips(count: int) -> list[np.ndarray]:
    """Clips of smooth motion (drifting colour waves), the kind of frames a trained model makes."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    clips = []
    for index in range(count):
        frames = [
            np.stack([np.sin((x + 3 * t + 5 * index) / 9 + c) * np.cos(y / 7 + c) for c in range(3)], -1)
            for t in range(FRAMES)
        ]
        clips.append((128 + 100 * np.stack(frames)).clip(0, 255).astype(np.uint8))
    return clips


def time_encoding(clips: Sequence[np.ndarray], repeats: int = 7) -> float:
    """Median seconds to encode ``clips`` side by side in threads, as the worker's store step does."""
    from concurrent.futures import ThreadPoolExecutor

    from inference.video import encode_mp4

    fps = PromptRequest.model_fields["fps"].default
    times = []
    with ThreadPoolExecutor((os.cpu_count() or 1) + 1) as pool:  # sized as the worker's store pool
        for _ in range(repeats + 1):  # the first one warms up
            start = time.perf_counter()
            list(pool.map(encode_mp4, clips, [fps] * len(clips)))
            times.append(time.perf_counter() - start)
            time.sleep(IDLE_PAUSE_S)  # like the worker, which encodes after a pipeline, not back to back
    return float(np.median(times[1:]))


def print_encoding_floor(tiny: OverheadRun | None) -> None:
    """Encoding alone, no service: the part of the overhead the content decides, not the service."""
    say("\n  -- encoding alone, in this process (no service) --")
    pipe = build_tiny_wan_pipeline(seed=0)
    prompts, seeds = request_inputs()
    shape = {"num_frames": FRAMES, "height": HEIGHT, "width": WIDTH}
    random_weights = generate(pipe, prompts, seeds, **shape).videos
    for label, clips in (
        ("tiny-wan candidates (noise)", random_weights),  # random weights make noise-like frames
        ("clips of smooth motion", smooth_clips(CANDIDATES)),  # what a trained model makes
    ):
        seconds = time_encoding(clips)
        share = f" = {100 * seconds / tiny.pipeline_s:.1f} % of tiny-wan's pipeline" if tiny else ""
        figure(f"{CANDIDATES} x {label}", f"{1000 * seconds:.0f} ms side by side{share}")


def measure_throughput(run: StackRun, batch: int) -> None:
    say("\n== 4. Throughput, 1 vs 2 workers ==")
    cores = os.cpu_count() or 1
    split = max(1, cores // 2)
    figure("CPU cores / torch threads per process", f"{cores} / {torch.get_num_threads()} by default")
    figure(
        "batch",
        f"{batch} requests x {CANDIDATES} candidates, submitted at once, spread evenly over the "
        f"{run.partitions} partitions",
    )

    def one_batch(label: str) -> tuple[str, float, int, list[int]]:
        ids = balanced_ids(batch, run.partitions)
        with progress(f"{batch} requests, {label}", lambda: f"{count_finished(run.engine, ids)} done"):
            started = time.time()
            for index, request_id in enumerate(ids):
                run.submit(bench_request(request_id, index))
            run.wait_done(ids, WORKER_START_TIMEOUT_S + 60 * batch, poll_s=0.25)
        seconds, failed = run.makespan(ids, started)
        return label, seconds, failed, run.workers.handled(ids)

    def two_warm_workers(label: str) -> None:
        with progress(f"{label}: join the group, one warm-up request per partition"):
            joined_s = run.wait_members(2)
            warm = balanced_ids(run.partitions, run.partitions)
            for index, request_id in enumerate(warm):
                run.submit(bench_request(request_id, index))
            run.wait_done(warm, WORKER_START_TIMEOUT_S)
        figure(f"{label}: group of 2 after", f"{joined_s:.1f} s")
        run.warn_of_intruders(own=2)

    start_first_worker(run)
    batches = [one_batch("1 worker, default threads")]
    run.workers.start()
    two_warm_workers("a second worker")
    batches.append(one_batch("2 workers, default threads each"))
    # The same two workers, each given its share of the cores (ADFAME_INFERENCE_THREADS).
    run.workers.stop()
    for _ in range(2):
        run.workers.start(ADFAME_INFERENCE_THREADS=str(split))
    two_warm_workers(f"two workers of {split} thread(s)")
    batches.append(one_batch(f"2 workers, {split} thread(s) each"))

    one_s = batches[0][1]
    for label, seconds, failed, handled in batches:
        note = f", {failed} failed" if failed else ""
        per_worker = f"; per worker {' / '.join(map(str, handled))}" if len(handled) > 1 else ""
        rate = 60 * batch / seconds
        figure(label, f"{rate:.1f} requests/min ({batch} in {seconds:.1f} s{note}{per_worker})")
        if seconds != one_s:
            figure("  throughput over 1 worker", f"{one_s / seconds:.2f}x on {cores} CPU cores")
    say(
        "  (workers that each use every core compete for them; split the cores with "
        "ADFAME_INFERENCE_THREADS when several run on one machine)"
    )


# ---- main ----------------------------------------------------------------------------------------
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.generation", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10, help="requests for the overhead (part 3)")
    parser.add_argument("--batch", type=int, default=12, help="requests per throughput batch (part 4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device())
    parser.add_argument(
        "--sections", default="1,2,3,4", help="sections to run, comma-separated (3 and 4 need the stack)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of part 1 (after a warm-up)")
    parser.add_argument("--cache-repeats", type=int, default=3, help="timed repeats of part 2")
    parser.add_argument("--cache-steps", type=int, default=20, help="denoising steps in part 2")
    parser.add_argument(
        "--thresholds", default="0.05,0.2", help="cache thresholds of part 2, comma-separated"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench requests' rows and videos")
    args = parser.parse_args(argv)
    args.thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
    try:
        args.sections = {int(p) for p in args.sections.split(",") if p.strip()}
    except ValueError:
        parser.error(f"--sections: expected numbers like 1,3, got {args.sections!r}")
    if not args.sections or not args.sections <= {1, 2, 3, 4}:
        parser.error(f"--sections: choose among 1, 2, 3 and 4, got {args.sections!r}")
    if min(args.requests, args.batch, args.repeats, args.cache_repeats, args.cache_steps) < 1:
        parser.error("counts must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    return args


def run_models(args: argparse.Namespace, settings: Settings) -> None:
    """Parts 1 and 2: the pipelines alone, no service."""
    with tempfile.TemporaryDirectory(prefix="adfame-bench-models-") as tmp:
        tiny = as_served(build_tiny_wan_pipeline(seed=0), Path(tmp, "tiny-wan"), args.device)
        big = as_served(build_big_pipeline(build_tiny_wan_pipeline(seed=0)), Path(tmp, "big"), args.device)
    figure("tiny-wan transformer", f"{params_m(tiny.transformer):.3f} M parameters")
    figure("larger random transformer", f"{params_m(big.transformer):.2f} M parameters")
    if 1 in args.sections:
        say("\n== 1. Batched vs sequential candidates ==")
        steps = settings.inference_steps
        timings = [time_batching(tiny, "tiny-wan", steps, args.repeats)]
        timings.append(time_batching(big, "larger random transformer", steps, max(1, args.repeats // 2)))
        print_batching(timings[0], args.repeats)
        print_batching(timings[1], max(1, args.repeats // 2))
    if 2 in args.sections:
        say("\n== 2. Cache speed-up (larger random transformer) ==")
        runs, calibration_s, reference = time_caches(
            big, args.cache_steps, args.thresholds, args.cache_repeats
        )
        print_caches(runs, calibration_s, reference, args.cache_steps, args.cache_repeats)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # its retries surface as our own errors
    diffusers_logging.disable_progress_bar()  # saving and loading the pipelines: bars, not figures
    transformers_logging.disable_progress_bar()
    started = time.monotonic()
    settings = get_settings()
    say(
        f"bench.generation: device {args.device} ({default_dtype(args.device)}), {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    if args.sections & {1, 2}:
        run_models(args, settings)
    run_stack(args, settings)
    say(f"\nbench.generation done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
