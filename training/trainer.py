"""The built-in LoRA trainer: peft adapters on Wan's transformer, driven by accelerate (docs/training.md).

One call trains one LoRA from an export: it encodes the export once (``training_data``), adds the
adapter (``WanSpec.add_lora``), runs ``config.steps`` optimizer steps of the configured objective
(``objectives``), checkpoints to the object store every ``checkpoint_every`` steps, logs to MLflow
(``tracking``) and writes ``pytorch_lora_weights.safetensors`` into ``output_dir/lora``.

Why each step draws from its own seeded generator: the batch order and every noise draw are a
function of (seed, step), not of how many steps this process has run, so a run resumed from a
checkpoint takes exactly the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore
from inference.model import resolve_source
from training.checkpoints import CheckpointStore, TrainingState, restore_rng_states, rng_states
from training.config import CONFIG_FILE, TrainConfig
from training.dataset import read_manifest
from training.finetrainers_backend import require_finetrainers
from training.objectives import dpo_loss, dpo_margins, sft_loss
from training.progress import StepProgress
from training.tracking import RunTracker, tracked_run
from training.training_data import TrainingData, load_training_data
from training.wan_spec import WanSpec

log = logging.getLogger(__name__)

LORA_FOLDER = "lora"
CACHE_FOLDER = "cache"
_LAUNCH_OF = {
    "none": {DistributedType.NO},
    "ddp": {DistributedType.MULTI_GPU, DistributedType.MULTI_CPU},
    "fsdp": {DistributedType.FSDP},
}


class ParallelMismatch(RuntimeError):
    """``TrainConfig.parallel`` disagrees with how the process was launched; the message says how to."""


@dataclass(frozen=True)
class WarmStart:
    """The LoRA a run starts from instead of a fresh adapter: a registered version's weights.

    Why: a retrain refines the served champion, so what earlier milestones' picks taught is kept;
    ``version`` ("name/number") is recorded on the run and in the new version's lineage.
    """

    version: str
    lora_dir: Path


@dataclass(frozen=True)
class TrainResult:
    lora_dir: Path  # holds pytorch_lora_weights.safetensors
    steps: int
    losses: list[float]  # one per step, from step 1, resumed steps included
    run_id: str | None  # the MLflow run, None when untracked
    seconds_per_step: float  # mean over the steps this call ran
    resumed_from: int | None  # the checkpoint's step when the run resumed
    parent: str | None = None  # the version the adapter started from (``WarmStart.version``)


@functools.lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def item_indices(n: int, seed: int, first: int, count: int) -> torch.Tensor:
    """Positions ``first .. first + count - 1`` of an endless run of seeded permutations of ``range(n)``."""
    return torch.stack([_permutation(n, seed, p // n)[p % n] for p in range(first, first + count)])


def step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    """The generator of one micro-batch's noise and timesteps: a function of where it is in the run only."""
    mixed = ((seed * 1_000_003 + step) * 1_009 + micro) * 101 + process
    return torch.Generator().manual_seed(mixed % 2**63)


@dataclass
class TrainingSession:
    """The live parts of one run between steps: model, data, optimizer, schedule, progress so far."""

    config: TrainConfig
    spec: WanSpec
    data: TrainingData
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    accelerator: Accelerator
    step: int = 0
    losses: list[float] = field(default_factory=list)

    def _micro_batch(self, step: int, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one micro-batch, to back-propagate, and its metrics as numbers."""
        config, acc = self.config, self.accelerator
        position = ((step - 1) * config.gradient_accumulation + micro) * acc.num_processes + acc.process_index
        indices = item_indices(len(self.data), config.seed, position * config.batch_size, config.batch_size)
        generator = step_generator(config.seed, step, micro, acc.process_index)
        tensors = self.data.batch(indices, self.spec.device)
        if config.objective == "sft":
            loss = sft_loss(self.spec, *tensors, generator)
            return loss, {"loss": loss.item()}
        winners, winner_embeds, losers, loser_embeds = tensors
        margins = dpo_margins(self.spec, winners, losers, winner_embeds, loser_embeds, config.beta, generator)
        result = dpo_loss(margins)
        return result.loss, {
            "loss": result.loss.item(),
            "implicit_accuracy": result.implicit_accuracy,
            "reward_margin": result.reward_margin,
        }

    def run_step(self, step: int) -> dict[str, float]:
        """One optimizer step over ``gradient_accumulation`` micro-batches; its metrics, averaged."""
        config, acc = self.config, self.accelerator
        totals: dict[str, float] = {}
        for micro in range(config.gradient_accumulation):
            last = micro == config.gradient_accumulation - 1
            # Under DDP only the last micro-batch all-reduces the gradients.
            with contextlib.nullcontext() if last else acc.no_sync(self.spec.denoiser):
                loss, metrics = self._micro_batch(step, micro)
                acc.backward(loss / config.gradient_accumulation)
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value / config.gradient_accumulation
        acc.clip_grad_norm_(self.optimizer.param_groups[0]["params"], config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        reduced = acc.reduce(torch.tensor(list(totals.values()), device=acc.device), reduction="mean")
        return dict(zip(totals, reduced.tolist(), strict=True)) | {"lr": self.scheduler.get_last_lr()[0]}

    def state(self, run_id: str | None) -> TrainingState:
        return TrainingState(
            step=self.step,
            lora=self.spec.lora_state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            rng=rng_states(),
            losses=list(self.losses),
            run_id=run_id,
            config_json=self.config.model_dump_json(),
        )

    def restore(self, state: TrainingState) -> None:
        self.spec.load_lora_state_dict(state.lora)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        restore_rng_states(state.rng)
        self.step, self.losses = state.step, list(state.losses)


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An Accelerator for ``config``; refuses a launch that disagrees with ``config.parallel``."""
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    if accelerator.distributed_type not in _LAUNCH_OF[config.parallel]:
        raise ParallelMismatch(
            f"parallel={config.parallel!r} but this process was launched as "
            f"{accelerator.distributed_type.value} ({accelerator.num_processes} processes); start it with "
            "`accelerate launch --config_file <ddp.yaml|fsdp.yaml>` to match (docs/training.md)"
        )
    return accelerator


def _warmup(warmup_steps: int):  # -> Callable[[int], float]
    return lambda done: min(1.0, (done + 1) / warmup_steps) if warmup_steps else 1.0


def start_session(
    config: TrainConfig,
    export_dir: Path,
    base_model: str,
    cache_dir: Path,
    settings: Settings,
    warm_start: WarmStart | None = None,
) -> TrainingSession:
    """Load the base model, encode the export (or read the cache), add the LoRA (fresh, or the
    ``warm_start`` version's weights), build the optimizer."""
    accelerator = make_accelerator(config)
    location = resolve_source(base_model, settings=settings)
    spec = WanSpec.from_pretrained(location, device=str(accelerator.device))
    data = load_training_data(spec, config.objective, export_dir, cache_dir, str(location))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the LoRA's initial weights
        params = spec.add_lora(config.rank, config.alpha, config.target_modules)
    if warm_start is not None:
        spec.start_from(warm_start.lora_dir)
    if config.gradient_checkpointing:
        spec.transformer.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup(config.warmup_steps))
    spec.denoiser, optimizer = accelerator.prepare(spec.transformer, optimizer)
    spec.transformer.train()
    return TrainingSession(config, spec, data, optimizer, scheduler, accelerator)


def _run_steps(
    session: TrainingSession, tracker: RunTracker, checkpoints: CheckpointStore | None, bar: StepProgress
) -> None:
    config, acc = session.config, session.accelerator
    for step in range(session.step + 1, config.steps + 1):
        metrics = session.run_step(step)
        session.step = step
        session.losses.append(metrics["loss"])
        tracker.add_metrics(step, metrics)
        bar.update(step, metrics)
        if step % config.log_every == 0:
            tracker.flush()
        if checkpoints is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            tracker.flush()  # the curve up to a checkpoint is in MLflow before the checkpoint is
            if acc.is_main_process:
                checkpoints.save(session.state(tracker.run_id))
            acc.wait_for_everyone()


def _run_tags(
    config: TrainConfig, export_dir: Path, base_model: str, warm_start: WarmStart | None
) -> tuple[str, dict[str, str]]:
    """The MLflow run's name and tags: objective, base model, the version it started from ("none" for
    a fresh adapter), and the export's milestone when known."""
    tags = {"objective": config.objective, "base_model": base_model, "engine": config.engine}
    tags["parent_version"] = warm_start.version if warm_start else "none"
    manifest_file = Path(export_dir) / "manifest.json"
    if not manifest_file.is_file():
        return f"train-{config.objective}", tags | {"export": str(export_dir)}
    manifest = read_manifest(Path(export_dir))
    tags |= {"milestone": str(manifest.milestone), "export": manifest.uri}
    return f"milestone-{manifest.milestone:05d}-{config.objective}", tags


def _resume(session: TrainingSession, checkpoints: CheckpointStore | None) -> TrainingState | None:
    """The last checkpoint of this run's config, restored into ``session``; None: start at step 0."""
    config = session.config
    state = checkpoints.latest(config.model_dump_json()) if checkpoints else None
    if state is not None:
        session.restore(state)
        log.info("resuming from the checkpoint at step %d of %d", state.step, config.steps)
    return state


def _log_start(
    tracker: RunTracker,
    session: TrainingSession,
    checkpoints: CheckpointStore | None,
    base_model: str,
    config_file: Path,
) -> None:
    """A new run's parameters and config file, then a step-0 checkpoint that names its MLflow run: an
    attempt killed before its first real checkpoint resumes into this run, not into a second one."""
    params = session.config.model_dump() | {"base_model": base_model, "items": len(session.data)}
    tracker.log_start(params, config_file)
    if checkpoints is not None and session.accelerator.is_main_process:
        checkpoints.save(session.state(tracker.run_id))


def train(
    config: TrainConfig,
    export_dir: Path,
    *,
    base_model: str,
    output_dir: Path,
    checkpoint_uri: str | None = None,
    settings: Settings | None = None,
    progress: bool = True,
    track: bool = True,
    warm_start: WarmStart | None = None,
) -> TrainResult:
    """Train a LoRA on the export at ``export_dir`` (a local, verified folder); see the module doc.

    ``track`` False keeps the run out of MLflow even when the settings' server answers (benchmarks
    and experiments that must not fill a stack's registry). With ``checkpoint_uri``
    (``s3://bucket/prefix``) the run checkpoints there and, started again with the same URI and
    config, resumes from the last checkpoint and ends at ``config.steps``. ``warm_start`` seeds the
    adapter with a registered version's LoRA instead of a fresh one.
    """
    settings = settings or get_settings()
    config = config.resolved()
    if config.engine == "finetrainers":
        require_finetrainers()
    output_dir = Path(output_dir)
    config_file = config.to_file(output_dir / CONFIG_FILE)
    cache = output_dir / CACHE_FOLDER
    session = start_session(config, Path(export_dir), base_model, cache, settings, warm_start)
    checkpoints = CheckpointStore(checkpoint_uri, ObjectStore(settings)) if checkpoint_uri else None
    state = _resume(session, checkpoints)
    main = session.accelerator.is_main_process
    run_name, tags = _run_tags(config, export_dir, base_model, warm_start)
    with tracked_run(
        settings,
        resume_run_id=state.run_id if state else None,
        run_name=run_name,
        tags=tags,
        enabled=main and track,
    ) as tracker:
        if state is None:
            _log_start(tracker, session, checkpoints, base_model, config_file)
        bar = StepProgress(session.step, config.steps, every=config.log_every, enabled=progress and main)
        _run_steps(session, tracker, checkpoints, bar)
        bar.close()
        lora_dir = output_dir / LORA_FOLDER
        if main:
            session.spec.save_lora(lora_dir)
            tracker.log_lora(lora_dir)
    return TrainResult(
        lora_dir,
        session.step,
        session.losses,
        tracker.run_id,
        bar.seconds_per_step,
        state.step if state else None,
        warm_start.version if warm_start else None,
    )
