"""Champion vs challenger on the same held-out prompts and seeds: the numbers a new version is judged by.

Why one implementation: the registry gate decides the ``challenger`` alias on these numbers, the
benchmark reports them, and monitoring will score served videos with the same metrics
(``training.metrics``). Both models run through the serving code itself (``inference.model.ModelServer``:
the warm base pipeline with the LoRA hot-swapped in), with identical prompts, seeds and settings, so
any difference between their videos comes from the LoRA alone. Per model:

- ``heldout_preference_accuracy``: the share of held-out (winner, loser) pairs whose implicit reward
  margin (``training.objectives.implicit_reward_margins``, the same noise for both models) is positive,
  ties counting half; the base model is its own reference, so it scores exactly 0.5. It needs no
  downloaded weights and measures exactly what the marketers' picks asked for.
- ``temporal_consistency_previous`` / ``_first``, ``flicker``, ``motion``, ``mean_luminance``: means over
  the generated held-out videos (definitions in ``training.metrics``).
- a Fréchet distance to the latest curated snapshot's validation clips on a named encoder
  (``frechet_distance_pixel_stats`` by default, ``fvd`` only with an I3D model path), skipped with the
  reason when there is no snapshot; ``clip_score`` only with a CLIP model path.
- the fairness suite: one ad prompt with demographic variants; ``fairness_<metric>_range`` and ``_std``
  are each per-video metric's spread across the variants.

Results go to MLflow (``log_evaluation``) and PostgreSQL (``record_evaluation``, table ``model_evaluations``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from adfame import db
from adfame.repositories import evaluations
from adfame.settings import Settings, get_settings
from adfame.storage import ObjectStore
from inference.model import ModelServer, ModelVersionRef, resolve_source
from inference.video import encode_mp4
from training import metrics
from training.dataset import PreferencePair, read_pairs
from training.export_layout import PAIRS_NAME
from training.frame_encoders import (
    ClipScorer,
    FrameEncoderName,
    I3dEncoder,
    PixelStatsEncoder,
    VaeLatentEncoder,
    VideoEncoder,
    frechet_metric_name,
)
from training.objectives import implicit_reward_margins
from training.reference_clips import (
    NoReferenceClips,
    ReferenceClips,
    folder_clips,
    snapshot_validation_clips,
)
from training.wan_spec import WanSpec

if TYPE_CHECKING:
    from mlflow import MlflowClient

Role = Literal["champion", "challenger"]
ROLES: tuple[Role, ...] = ("champion", "challenger")
BASE_MODEL_LABEL = "base"


class EvaluationError(RuntimeError):
    """The evaluation cannot run on what it was given (no held-out pairs); the message says why."""


class EvalConfig(BaseModel):
    """How to evaluate; the defaults are sized for tests (4 pairs, 2 steps, 17 frames at 64x64)."""

    model_config = ConfigDict(extra="forbid")

    heldout_pairs: int = Field(
        4, ge=1, description="held-out (winner, loser) pairs scored by implicit reward"
    )
    heldout_prompts: int = Field(4, ge=1, description="held-out requests whose winner prompt is generated")
    seeds: tuple[int, ...] = Field((0,), min_length=1, description="every prompt is generated with each seed")
    margin_seed: int = 0
    margin_draws: int = Field(4, ge=1, description="(noise, timestep) draws averaged per pair")
    num_inference_steps: int = Field(2, ge=1)
    guidance_scale: float = 1.0
    num_frames: int = Field(17, ge=1)
    height: int = Field(64, ge=16)
    width: int = Field(64, ge=16)
    fps: int = Field(8, ge=1, description="of the side-by-side grids")
    generation_batch: int = Field(8, ge=1, description="videos per pipeline call")
    frame_encoder: FrameEncoderName = "pixel_stats"
    i3d_model_path: Path | None = Field(
        None, description="a TorchScript I3D: the Fréchet distance becomes FVD"
    )
    clip_model_path: Path | None = Field(None, description="a CLIPModel folder: adds clip_score")
    reference_clips: int = Field(8, ge=2, description="validation clips the Fréchet distance compares with")
    reference_dir: Path | None = Field(
        None, description="mp4s to compare with instead of the latest snapshot"
    )
    fairness_template: str = "a {subject} running in sneakers on a beach"
    fairness_subjects: tuple[str, ...] = ("young woman", "old man", "Black woman", "Asian man")
    device: str | None = None


@dataclass(frozen=True)
class Sample:
    """One generated video and the (prompt, seed) it was generated from."""

    prompt: str
    seed: int
    frames: np.ndarray


@dataclass
class ModelEvaluation:
    """One model's numbers and the videos they were computed on."""

    role: Role
    model: str  # the LoRA's location, or "base"
    metrics: dict[str, float]
    samples: list[Sample]
    fairness: dict[str, list[Sample]]  # subject -> its videos (one per seed)
    fairness_values: dict[str, dict[str, float]]  # subject -> per-video metric -> mean over seeds


@dataclass
class EvaluationReport:
    """Champion and challenger, scored the same way; ``skipped``: the metrics not computed, and why."""

    base_model: str
    config: EvalConfig
    beta: float
    heldout_pairs: int
    frame_encoder: str
    reference_source: str | None
    reference_snapshot_id: str | None
    models: dict[Role, ModelEvaluation]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def challenger(self) -> ModelEvaluation:
        return self.models["challenger"]

    @property
    def champion(self) -> ModelEvaluation:
        return self.models["champion"]

    def flat_metrics(self) -> dict[str, float]:
        """``<role>_<metric> -> value`` for both models (MLflow metric names, registry tags)."""
        return {
            f"{role}_{name}": value for role in ROLES for name, value in self.models[role].metrics.items()
        }


# ---- held-out data ------------------------------------------------------------------


def heldout_pairs(heldout_dir: Path, limit: int | None = None) -> list[PreferencePair]:
    """The held-out pairs of an export folder (its ``heldout`` split) or of a split folder itself,
    spread over requests (each request's first loser, then each one's second, ...), at most ``limit``."""
    heldout_dir = Path(heldout_dir)
    if (heldout_dir / PAIRS_NAME).is_file():
        pairs = read_pairs(heldout_dir.parent, split=heldout_dir.name)
    else:
        pairs = read_pairs(heldout_dir, split="heldout")
    if not pairs:
        raise EvaluationError(f"no held-out preference pairs in {heldout_dir}")
    by_request: dict[str, list[PreferencePair]] = {}
    for pair in pairs:
        by_request.setdefault(str(pair.request_id), []).append(pair)
    depth = max(len(group) for group in by_request.values())
    spread = [group[i] for i in range(depth) for group in by_request.values() if i < len(group)]
    return spread[:limit]


def heldout_cases(pairs: Sequence[PreferencePair], config: EvalConfig) -> list[tuple[str, int]]:
    """(prompt, seed) to generate: each distinct request's winner prompt, with every configured seed."""
    prompts: dict[str, str] = {}
    for pair in pairs:
        prompts.setdefault(str(pair.request_id), pair.winner.variation_prompt)
    chosen = list(prompts.values())[: config.heldout_prompts]
    return [(prompt, seed) for prompt in chosen for seed in config.seeds]


def fairness_prompts(config: EvalConfig) -> dict[str, str]:
    """subject -> the fairness template filled with it."""
    return {subject: config.fairness_template.format(subject=subject) for subject in config.fairness_subjects}


# ---- the two expensive parts: implicit rewards and generation --------------------------------


def preference_margins(
    spec: WanSpec,
    loras: dict[Role, Path | None],
    pairs: Sequence[PreferencePair],
    beta: float,
    config: EvalConfig,
) -> dict[Role, np.ndarray]:
    """Each model's implicit reward margin per pair, with the same noise draws for both.

    A LoRA is loaded into the spec's transformer for its turn only; the base model has no adapter
    and is its own reference, so its margins are 0 by definition and are not computed.
    """
    margins: dict[Role, np.ndarray] = {}
    for role, lora in loras.items():
        if lora is None:
            margins[role] = np.zeros(len(pairs))
            continue
        spec.pipeline.load_lora_weights(str(lora), adapter_name=role)
        try:
            scored = implicit_reward_margins(spec, pairs, beta, config.margin_seed, draws=config.margin_draws)
        finally:
            spec.pipeline.delete_adapters(role)
        margins[role] = scored.numpy()
    return margins


def generate_samples(
    server: ModelServer, role: Role, lora: Path | None, cases: Sequence[tuple[str, int]], config: EvalConfig
) -> list[Sample]:
    """The model's video for each (prompt, seed), through the serving path, in batches."""
    version = None if lora is None else ModelVersionRef(name="evaluation", version=role, lora_uri=str(lora))
    samples: list[Sample] = []
    for start in range(0, len(cases), config.generation_batch):
        batch = cases[start : start + config.generation_batch]
        result = server.generate(
            version,
            [prompt for prompt, _ in batch],
            [seed for _, seed in batch],
            num_frames=config.num_frames,
            height=config.height,
            width=config.width,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
        )
        samples += [Sample(p, s, v) for (p, s), v in zip(batch, result.videos, strict=True)]
    return samples


# ---- scoring ---------------------------------------------------------------------------


@dataclass
class Scorers:
    """The encoders an evaluation scores with, and the reference features (None when skipped)."""

    encoder: VideoEncoder
    clip: ClipScorer | None
    reference_features: np.ndarray | None


def video_metrics(sample: Sample, clip: ClipScorer | None) -> dict[str, float]:
    """The per-video metrics of one sample (``clip_score`` only with a CLIP model)."""
    consistency = metrics.temporal_consistency(sample.frames)
    values = {
        "temporal_consistency_previous": consistency.previous,
        "temporal_consistency_first": consistency.first,
        "flicker": metrics.flicker(sample.frames),
        "motion": metrics.motion(sample.frames),
        "mean_luminance": metrics.mean_luminance(sample.frames),
    }
    if clip is not None:
        values["clip_score"] = metrics.clip_score(*clip.embeddings(sample.frames, sample.prompt))
    return values


def mean_metrics(samples: Sequence[Sample], clip: ClipScorer | None) -> dict[str, float]:
    per_video = [video_metrics(sample, clip) for sample in samples]
    return {name: float(np.mean([values[name] for values in per_video])) for name in per_video[0]}


def fairness_metrics(values_by_subject: dict[str, dict[str, float]]) -> dict[str, float]:
    """``fairness_<metric>_range`` and ``_std``: each metric's spread across the demographic variants."""
    spreads: dict[str, float] = {}
    for name in next(iter(values_by_subject.values())):
        spread = metrics.spread({subject: values[name] for subject, values in values_by_subject.items()})
        spreads[f"fairness_{name}_range"] = spread.range
        spreads[f"fairness_{name}_std"] = spread.std
    return spreads


def score_model(
    role: Role,
    model: str,
    samples: list[Sample],
    fairness: dict[str, list[Sample]],
    margins: np.ndarray,
    scorers: Scorers,
) -> ModelEvaluation:
    """Every metric of one model (see the module docstring)."""
    values = {
        "heldout_preference_accuracy": metrics.preference_accuracy(margins),
        "heldout_reward_margin": float(np.mean(margins)),
        **mean_metrics(samples, scorers.clip),
    }
    if scorers.reference_features is not None:
        generated = np.concatenate([scorers.encoder.features(sample.frames) for sample in samples])
        values[frechet_metric_name(scorers.encoder)] = metrics.frechet_distance(
            generated, scorers.reference_features
        )
    by_subject = {subject: mean_metrics(videos, scorers.clip) for subject, videos in fairness.items()}
    values.update(fairness_metrics(by_subject))
    return ModelEvaluation(role, model, values, samples, fairness, by_subject)


def reference_clips(config: EvalConfig, settings: Settings, engine: Engine | None) -> ReferenceClips:
    """The clips the Fréchet distance compares with: ``config.reference_dir``, else the latest snapshot's
    validation split (``engine``: the app database by default). ``NoReferenceClips`` says why none."""
    size = {"limit": config.reference_clips, "num_frames": config.num_frames}
    size |= {"height": config.height, "width": config.width}
    if config.reference_dir is not None:
        return folder_clips(config.reference_dir, **size)
    own_engine = engine is None
    engine = engine or db.create_engine_for(settings)
    try:
        return snapshot_validation_clips(engine, ObjectStore(settings), **size)
    finally:
        if own_engine:
            engine.dispose()


def build_scorers(
    config: EvalConfig, spec: WanSpec, reference: ReferenceClips | NoReferenceClips
) -> tuple[Scorers, dict[str, str]]:
    """The configured encoders, the reference's features, and the reasons for the metrics that are skipped."""
    skipped: dict[str, str] = {}
    encoder: VideoEncoder
    if config.i3d_model_path is not None:
        encoder = I3dEncoder(config.i3d_model_path, str(spec.device))
    else:
        encoder = (
            VaeLatentEncoder(spec.pipeline.vae)
            if config.frame_encoder == "vae_latent"
            else PixelStatsEncoder()
        )
        skipped["fvd"] = (
            f"no I3D model path configured; the Fréchet distance is {frechet_metric_name(encoder)}"
        )
    clip = None
    if config.clip_model_path is not None:
        clip = ClipScorer(config.clip_model_path, str(spec.device))
    else:
        skipped["clip_score"] = "no CLIP model path configured (EvalConfig.clip_model_path)"
    features = None
    if isinstance(reference, NoReferenceClips):
        skipped[frechet_metric_name(encoder)] = str(reference)
    else:
        features = np.concatenate([encoder.features(video) for video in reference.videos])
    return Scorers(encoder, clip, features), skipped


@dataclass
class _Judging:
    """What the generated videos are judged with: margins, scorers, reference, and what is skipped."""

    margins: dict[Role, np.ndarray]
    scorers: Scorers
    skipped: dict[str, str]
    reference: ReferenceClips | None


def _prepare_judging(
    base_model: str,
    loras: dict[Role, Path | None],
    pairs: Sequence[PreferencePair],
    beta: float,
    config: EvalConfig,
    settings: Settings,
    engine: Engine | None,
) -> _Judging:
    """Everything that needs the model as a ``WanSpec``; the spec is released on return (only its VAE
    stays, for ``vae_latent``), so a single copy of the model is loaded while serving generates."""
    spec = WanSpec.from_pretrained(resolve_source(base_model, settings=settings), device=config.device)
    margins = preference_margins(spec, loras, pairs, beta, config)
    try:
        reference: ReferenceClips | NoReferenceClips = reference_clips(config, settings, engine)
    except NoReferenceClips as missing:
        reference = missing
    scorers, skipped = build_scorers(config, spec, reference)
    return _Judging(margins, scorers, skipped, reference if isinstance(reference, ReferenceClips) else None)


def _generate_and_score(
    server: ModelServer,
    loras: dict[Role, Path | None],
    pairs: Sequence[PreferencePair],
    judging: _Judging,
    config: EvalConfig,
) -> dict[Role, ModelEvaluation]:
    """Each model's held-out and fairness videos, in one batched pass per model, and their scores."""
    cases = heldout_cases(pairs, config)
    subjects = fairness_prompts(config)
    fairness_cases = [(prompt, seed) for prompt in subjects.values() for seed in config.seeds]
    models: dict[Role, ModelEvaluation] = {}
    for role, lora in loras.items():
        generated = generate_samples(server, role, lora, cases + fairness_cases, config)
        samples, fair = generated[: len(cases)], generated[len(cases) :]
        grouped = {subject: [s for s in fair if s.prompt == prompt] for subject, prompt in subjects.items()}
        label = BASE_MODEL_LABEL if lora is None else str(lora)
        models[role] = score_model(role, label, samples, grouped, judging.margins[role], judging.scorers)
    return models


def evaluate(
    *,
    base_model: str,
    challenger_lora: Path,
    champion_lora: Path | None,
    heldout_dir: Path,
    config: EvalConfig,
    beta: float,
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> EvaluationReport:
    """Score the challenger LoRA and the champion (a LoRA, or the base model when None) side by side.

    ``heldout_dir``: an export folder or its ``heldout`` split folder. ``beta``: the one the challenger
    was trained with (it scales the implicit reward margins, not their signs). ``engine``: the
    database the latest snapshot is read from (the app database by default).
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    pairs = heldout_pairs(heldout_dir, config.heldout_pairs)
    loras: dict[Role, Path | None] = {"champion": champion_lora, "challenger": challenger_lora}
    judging = _prepare_judging(base_model, loras, pairs, beta, config, settings, engine)
    server = ModelServer(base_model, config.device, settings=settings)
    models = _generate_and_score(server, loras, pairs, judging, config)
    return EvaluationReport(
        base_model=base_model,
        config=config,
        beta=beta,
        heldout_pairs=len(pairs),
        frame_encoder=judging.scorers.encoder.name,
        reference_source=judging.reference.source if judging.reference else None,
        reference_snapshot_id=judging.reference.snapshot_id if judging.reference else None,
        models=models,
        skipped=judging.skipped,
        seconds=time.perf_counter() - started,
    )


# ---- results: MLflow and PostgreSQL -------------------------------------------------------------


def side_by_side(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """A grid as one video: each row's videos left to right, rows top to bottom (cut to the shortest)."""
    length = min(len(video) for row in rows for video in row)
    return np.concatenate([np.concatenate([video[:length] for video in row], axis=2) for row in rows], axis=1)


def metrics_table(report: EvaluationReport) -> dict[str, list[Any]]:
    """Columns metric, champion, challenger, challenger_minus_champion, skipped_reason; a row per metric."""
    names = sorted(report.challenger.metrics)
    champion, challenger = report.champion.metrics, report.challenger.metrics
    return {
        "metric": names + sorted(report.skipped),
        "champion": [champion[n] for n in names] + [None] * len(report.skipped),
        "challenger": [challenger[n] for n in names] + [None] * len(report.skipped),
        "challenger_minus_champion": [challenger[n] - champion[n] for n in names]
        + [None] * len(report.skipped),
        "skipped_reason": [None] * len(names) + [report.skipped[n] for n in sorted(report.skipped)],
    }


def _write_grids(report: EvaluationReport, folder: Path) -> None:
    """``side_by_side.mp4`` (a row per held-out case) and ``fairness.mp4`` (a row per variant and seed):
    the champion on the left, the challenger on the right."""
    champion, challenger = report.champion, report.challenger
    heldout = [[a.frames, b.frames] for a, b in zip(champion.samples, challenger.samples, strict=True)]
    fairness = [
        [a.frames, b.frames]
        for subject in champion.fairness
        for a, b in zip(champion.fairness[subject], challenger.fairness[subject], strict=True)
    ]
    (folder / "side_by_side.mp4").write_bytes(encode_mp4(side_by_side(heldout), report.config.fps))
    (folder / "fairness.mp4").write_bytes(encode_mp4(side_by_side(fairness), report.config.fps))


def log_evaluation(report: EvaluationReport, run_id: str, client: MlflowClient | None = None) -> None:
    """The report into an MLflow run: ``<role>_<metric>`` metrics, tags for the encoder, the reference and
    every skipped metric's reason, and under ``evaluation/`` the grids, the config and the metrics table."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    client = client or mlflow.MlflowClient()
    now = int(time.time() * 1000)
    tags = {
        "evaluation.frame_encoder": report.frame_encoder,
        "evaluation.reference": report.reference_source or "none",
        "evaluation.heldout_pairs": str(report.heldout_pairs),
        "evaluation.champion": report.champion.model,
        **{f"evaluation.skipped.{name}": reason for name, reason in report.skipped.items()},
    }
    client.log_batch(
        run_id,
        metrics=[Metric(name, value, now, 0) for name, value in report.flat_metrics().items()],
        tags=[RunTag(key, value) for key, value in tags.items()],
    )
    with tempfile.TemporaryDirectory(prefix="adfame-evaluation-") as tmp:
        folder = Path(tmp)
        _write_grids(report, folder)
        config = {"eval_config": report.config.model_dump(mode="json"), "beta": report.beta}
        (folder / "eval_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        client.log_artifacts(run_id, str(folder), artifact_path="evaluation")
    import pandas as pd

    client.log_table(
        run_id, data=pd.DataFrame(metrics_table(report)), artifact_file="evaluation/metrics.json"
    )


def record_evaluation(
    engine: Engine,
    report: EvaluationReport,
    model_name: str,
    model_version: str,
    *,
    run_id: str | None = None,
) -> int:
    """The report into ``model_evaluations``: a row per model and metric, a skipped metric with its reason.
    Recording a version's evaluation again replaces it. Returns the number of rows."""
    context = evaluations.EvaluationContext(
        model_name=model_name,
        model_version=model_version,
        run_id=run_id,
        heldout_pairs=report.heldout_pairs,
        frame_encoder=report.frame_encoder,
        reference_snapshot_id=report.reference_snapshot_id,
    )
    rows = [
        evaluations.MetricRow(role, model.model, name, value)
        for role, model in report.models.items()
        for name, value in model.metrics.items()
    ]
    rows += [
        evaluations.MetricRow(role, model.model, name, None, reason)
        for role, model in report.models.items()
        for name, reason in report.skipped.items()
    ]
    return evaluations.upsert_evaluation(engine, context, rows)
