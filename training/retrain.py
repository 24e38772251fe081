"""The steps of ``retrain_on_feedback``: export -> train -> evaluate -> register -> announce.

Why functions here and not in the DAG: each step is a plain function of the run's conf and the
previous step's typed output, so it runs (and is tested) without Airflow; the DAG only wires them
(``operators.retrain_step.RetrainStepOperator``). Each output is a pydantic model small enough for
XCom, and points at what the next step needs through the object store and MLflow, never through a
local path: the training step may run on a GPU worker, the others elsewhere. Heavy modules (torch,
diffusers, MLflow) are imported inside the steps, so the DAG file parses fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from adfame.contracts import CHAMPION_ALIAS, MODELS_BUCKET
from adfame.schemas import RetrainConf
from adfame.settings import Settings, get_settings
from training.export_layout import ExportManifest
from training.registry import EvaluationScores, RegisteredVersion
from training.tracking import LORA_ARTIFACT_PATH

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.trainer import TrainResult, WarmStart

log = logging.getLogger(__name__)

# What a training result and its hand-off between tasks have in common (the LoRA travels in MLflow).
_RESULT_FIELDS = frozenset({"run_id", "steps", "losses", "seconds_per_step", "resumed_from", "parent"})


class RetrainConfError(ValueError):
    """The run's conf cannot be used; retrying cannot fix it."""


class NoChallenger(RuntimeError):
    """The milestone's version failed the gate: there is no new challenger to announce."""


class Exported(BaseModel):
    """After ``export_step``: the milestone's export, by its manifest, and the version to refine.

    ``parent`` ("name/number") is the champion when the export was made: fixed here, in the first
    task, so a retried training task starts from the same weights even if a promotion happened since.
    """

    model_config = ConfigDict(frozen=True)

    manifest: ExportManifest
    parent: str | None = None


class Trained(BaseModel):
    """After ``train_step``: the MLflow run holding the LoRA (artifact ``lora``) and its loss curve."""

    model_config = ConfigDict(frozen=True)

    exported: Exported
    run_id: str
    steps: int
    losses: list[float]
    seconds_per_step: float
    resumed_from: int | None
    objective: str
    beta: float
    parent: str | None = None  # the version the LoRA started from; None: a fresh adapter

    @property
    def lora_uri(self) -> str:
        return f"runs:/{self.run_id}/{LORA_ARTIFACT_PATH}"

    @classmethod
    def of(cls, exported: Exported, result: TrainResult, config: TrainConfig) -> Trained:
        """The hand-off of a tracked run (``result.run_id`` set): its numbers, objective and beta."""
        shared = {name: getattr(result, name) for name in _RESULT_FIELDS}
        return cls(exported=exported, objective=config.objective, beta=config.beta, **shared)

    def result(self, lora_dir: Path) -> TrainResult:
        """The training result again, as the registry takes it, with the LoRA downloaded to ``lora_dir``."""
        from training.trainer import TrainResult

        return TrainResult(lora_dir=lora_dir, **self.model_dump(include=_RESULT_FIELDS))


class Evaluated(BaseModel):
    """After ``evaluate_step``: the evaluation's numbers (its videos went to the training run in MLflow)."""

    model_config = ConfigDict(frozen=True)

    trained: Trained
    scores: EvaluationScores
    report: dict[str, Any]  # the EvaluationReport's fields but the videos (``evaluation_record``)


class Registered(BaseModel):
    """After ``register_step``: the milestone's version and whether it became the challenger."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    alias: str | None
    reasons: list[str]
    created: bool
    milestone: int


def parse_conf(conf: dict[str, Any] | None) -> RetrainConf:
    """The run's conf with its ``train`` and ``evaluation`` overrides checked; ``RetrainConfError`` if bad."""
    from training.config import TrainConfig
    from training.evaluation import EvalConfig

    try:
        parsed = RetrainConf.model_validate(conf or {})
        TrainConfig(**parsed.train)
        EvalConfig(**parsed.evaluation)
    except ValidationError as exc:
        raise RetrainConfError(f"invalid retrain_on_feedback conf {conf!r}: {exc}") from exc
    return parsed


def work_folder(settings: Settings, milestone: int) -> Path:
    """This machine's scratch folder for a milestone (downloads, the trainer's output)."""
    return settings.state_dir / "training" / f"milestone-{milestone:05d}"


def checkpoint_uri(milestone: int) -> str:
    """Where the milestone's training checkpoints live: a retried task resumes from them."""
    return f"s3://{MODELS_BUCKET}/checkpoints/milestone-{milestone:05d}"


# ---- the steps -----------------------------------------------------------------------------


def export_step(conf: RetrainConf, settings: Settings | None = None) -> Exported:
    """Export the milestone's selections (idempotent: a re-run returns the same manifest)."""
    from training.export import export_milestone

    settings = settings or get_settings()
    manifest = export_milestone(
        conf.milestone,
        settings=settings,
        heldout_share=conf.heldout_share,
        curated_sample=conf.curated_sample,
    )
    parent = champion_version(_mlflow(settings), settings) if conf.warm_start else None
    return Exported(manifest=manifest, parent=parent)


def train_step(conf: RetrainConf, exported: Exported, settings: Settings | None = None) -> Trained:
    """Fine-tune a LoRA on the export's train split, starting from the export's ``parent`` (the champion
    then) when its shape fits; checkpoints make a retried task resume."""
    from training.config import TrainConfig
    from training.dataset import fetch_export
    from training.trainer import train

    settings = settings or get_settings()
    manifest = exported.manifest
    work = work_folder(settings, conf.milestone)
    export_dir = fetch_export(manifest.uri, work / "export")
    config = TrainConfig(**conf.train)
    result = train(
        config,
        export_dir,
        base_model=manifest.base_model,
        output_dir=work / "train",
        checkpoint_uri=checkpoint_uri(conf.milestone),
        settings=settings,
        progress=False,
        warm_start=warm_start(exported.parent, config, settings),
    )
    if result.run_id is None:
        raise RuntimeError(f"training logged no MLflow run (is MLflow at {settings.mlflow_url} up?)")
    return Trained.of(exported, result, config)


def evaluate_step(conf: RetrainConf, trained: Trained, settings: Settings | None = None) -> Evaluated:
    """Challenger (the new LoRA) against the champion (or the base model) on the held-out split;
    the numbers, grids and table go to the training run."""
    from training.dataset import fetch_export
    from training.evaluation import EvalConfig, evaluate, log_evaluation

    settings = settings or get_settings()
    work = work_folder(settings, conf.milestone)
    client = _mlflow(settings)
    export_dir = fetch_export(trained.exported.manifest.uri, work / "export")
    report = evaluate(
        base_model=trained.exported.manifest.base_model,
        challenger_lora=download_lora(trained, work / "lora"),
        champion_lora=champion_lora(client, settings),
        heldout_dir=export_dir,
        config=EvalConfig(**conf.evaluation),
        beta=trained.beta,
        settings=settings,
    )
    log_evaluation(report, trained.run_id, client)
    return Evaluated(
        trained=trained, scores=EvaluationScores.from_report(report), report=evaluation_record(report)
    )


def register_step(conf: RetrainConf, evaluated: Evaluated, settings: Settings | None = None) -> Registered:
    """Register the milestone's version once, gate it, and record its evaluation in PostgreSQL."""
    from adfame import db
    from training.evaluation import record_evaluation
    from training.registry import register_version

    settings = settings or get_settings()
    trained = evaluated.trained
    _mlflow(settings)
    lora_dir = download_lora(trained, work_folder(settings, conf.milestone) / "lora")
    version = register_version(
        train=trained.result(lora_dir),
        report=evaluated.scores,
        manifest=trained.exported.manifest,
        settings=settings,
        objective=trained.objective,
    )
    engine = db.create_engine_for(settings)
    try:
        report = evaluation_report(evaluated)
        record_evaluation(engine, report, version.name, version.version, run_id=trained.run_id)
    finally:
        engine.dispose()
    return _registered(version, conf.milestone)


def announce_step(conf: RetrainConf, registered: Registered, settings: Settings | None = None) -> Registered:
    """Pass the new challenger on (the DAG's asset event); ``NoChallenger`` when the gate failed."""
    if registered.alias is None:
        reasons = "; ".join(registered.reasons) or "it carries no alias"
        raise NoChallenger(f"{registered.name}/{registered.version} is not a challenger: {reasons}")
    return registered


# ---- helpers ---------------------------------------------------------------------------------


def _mlflow(settings: Settings) -> Any:  # -> MlflowClient
    from adfame.mlflow_setup import configure_mlflow

    return configure_mlflow(settings)


def _registered(version: RegisteredVersion, milestone: int) -> Registered:
    return Registered(
        name=version.name,
        version=version.version,
        alias=version.alias,
        reasons=version.reasons,
        created=version.created,
        milestone=milestone,
    )


def download_lora(trained: Trained, folder: Path) -> Path:
    """The training run's LoRA folder, downloaded into ``folder`` (replaced if there)."""
    import shutil

    import mlflow

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=trained.lora_uri, dst_path=str(folder)))


def champion_version(client: Any, settings: Settings) -> str | None:
    """The served champion as "name/number", or None while the base model is served."""
    from inference.model import resolve_alias

    champion = resolve_alias(client, CHAMPION_ALIAS, settings.registered_model)
    return None if champion is None else f"{champion.name}/{champion.version}"


def warm_start(parent: str | None, config: TrainConfig, settings: Settings) -> WarmStart | None:
    """``parent``'s LoRA to start training from, or None (a fresh adapter) when there is no parent or
    its shape differs from ``config``'s (a retrain that changes rank or modules starts afresh, and
    says so in the log)."""
    from inference.model import local_lora, version_ref
    from training.trainer import WarmStart
    from training.wan_spec import LoraShape

    if parent is None:
        return None
    name, number = parent.rsplit("/", 1)
    lora_dir = local_lora(version_ref(_mlflow(settings), name, number), settings.models_cache / "loras")
    shape = LoraShape.of_saved(lora_dir)
    if shape != LoraShape.of(config.rank, config.alpha, config.target_modules):
        log.warning("training a fresh adapter: %s's LoRA has another shape (%s)", parent, shape)
        return None
    return WarmStart(parent, lora_dir)


def champion_lora(client: Any, settings: Settings) -> Path | None:
    """The served champion's LoRA (downloaded once into the model cache), or None for the base model."""
    from inference.model import local_lora, resolve_alias

    champion = resolve_alias(client, CHAMPION_ALIAS, settings.registered_model)
    if champion is None:
        return None
    return local_lora(champion, settings.models_cache / "loras")


def evaluation_record(report: Any) -> dict[str, Any]:  # report: EvaluationReport
    """An ``EvaluationReport`` without its videos, as JSON-ready data (``evaluation_report`` reads it)."""
    return {
        "base_model": report.base_model,
        "config": report.config.model_dump(mode="json"),
        "beta": report.beta,
        "heldout_pairs": report.heldout_pairs,
        "frame_encoder": report.frame_encoder,
        "reference_source": report.reference_source,
        "reference_snapshot_id": report.reference_snapshot_id,
        "models": {role: {"model": m.model, "metrics": m.metrics} for role, m in report.models.items()},
        "skipped": report.skipped,
        "seconds": report.seconds,
    }


def evaluation_report(evaluated: Evaluated) -> Any:  # -> EvaluationReport
    """The ``EvaluationReport`` of ``evaluation_record``, its videos left out (they are in MLflow)."""
    from training.evaluation import EvalConfig, EvaluationReport, ModelEvaluation

    data = dict(evaluated.report)
    models = {
        role: ModelEvaluation(role, values["model"], dict(values["metrics"]), [], {}, {})
        for role, values in data.pop("models").items()
    }
    return EvaluationReport(**{**data, "config": EvalConfig(**data["config"]), "models": models})
