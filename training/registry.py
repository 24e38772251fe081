"""A trained LoRA becomes a version of ``adfame-wan-lora``: logged, traced to its data, gated, aliased.

Why here and not in the trainer: a version is what serving, the canary and a reviewer see, so it
must say where it came from (lineage tags: base model, milestone, selections, export, snapshot,
training run, objective, code commit, evaluation) and whether it may be served. The gate's
thresholds are settings; a version that fails keeps its files and its tags (``gate=failed`` and the
reasons in ``gate_failed``) but gets no alias, so it is reviewable and never served. Each milestone
has at most one version: a re-run finds it by its ``milestone`` tag and registers nothing.
The model's format (MLflow's ``diffusers`` flavour with a pyfunc that returns videos) is
``training.pyfunc``.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from adfame.contracts import CHALLENGER_ALIAS
from adfame.settings import PROJECT_ROOT, Settings, get_settings
from training.export_layout import MANIFEST_NAME, ExportManifest

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from training.evaluation import EvaluationReport
    from training.trainer import TrainResult

MODEL_ARTIFACT = "video_lora"  # the logged model's name inside its run
PREFERENCE_ACCURACY = "heldout_preference_accuracy"
_FLOOR = 1e-6  # a champion value this close to 0 is compared in absolute terms

Direction = Literal["lower", "higher", "consistency"]
# The quality metrics the gate compares with the champion's, and which way is better. Consistency is in
# [0, 1] with 1 best, so its shortfall from 1 is what is compared. Taste metrics (motion, luminance)
# and fairness spreads are reported, never gated.
QUALITY_METRICS: dict[str, Direction] = {
    "temporal_consistency_previous": "consistency",
    "temporal_consistency_first": "consistency",
    "flicker": "lower",
    "clip_score": "higher",
}
_LOWER_IS_BETTER_PREFIXES = ("frechet_distance", "fvd")


class LineageTag(StrEnum):
    """The tags every registered version carries (``adfame lineage`` reads them)."""

    BASE_MODEL = "base_model"
    MILESTONE = "milestone"
    SELECTION_RANGE = "selection_range"  # "<first seq>..<last seq>"
    SELECTIONS = "selections"
    EXPORT_URI = "export_uri"
    EXPORT_MANIFEST = "export_manifest"
    DATASET_SNAPSHOT = "dataset_snapshot"
    TRAINING_RUN = "training_run"
    PARENT_VERSION = "parent_version"  # the version its LoRA started from, "none" for a fresh adapter
    OBJECTIVE = "objective"
    CODE_COMMIT = "code_commit"
    GATE = "gate"  # "passed" or "failed"
    GATE_FAILED = "gate_failed"  # the reasons, "; "-separated (only on a failed version)
    EVAL_PREFIX = "eval."  # eval.<role>_<metric>: the evaluation's numbers


class RegistryError(RuntimeError):
    """The registry refused or holds something unexpected (two versions for one milestone)."""


class EvaluationScores(BaseModel):
    """An evaluation's numbers without its videos: what the gate reads and what travels between tasks."""

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, dict[str, float]]  # role ("champion", "challenger") -> metric -> value
    models: dict[str, str]  # role -> the evaluated LoRA's location, or "base"
    skipped: dict[str, str] = {}

    @classmethod
    def from_report(cls, report: EvaluationReport | EvaluationScores) -> EvaluationScores:
        if isinstance(report, EvaluationScores):
            return report
        return cls(
            metrics={role: dict(model.metrics) for role, model in report.models.items()},
            models={role: model.model for role, model in report.models.items()},
            skipped=dict(report.skipped),
        )

    def flat(self) -> dict[str, float]:
        """``<role>_<metric> -> value``, as ``EvaluationReport.flat_metrics`` names them."""
        return {
            f"{role}_{name}": value for role, values in self.metrics.items() for name, value in values.items()
        }


@dataclass(frozen=True)
class RegisteredVersion:
    """The version of a milestone: its alias (None when the gate failed) and the gate's reasons."""

    name: str
    version: str
    alias: str | None
    reasons: list[str] = field(default_factory=list)
    created: bool = True  # False when a re-run found the milestone's version already registered

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


# ---- the gate -----------------------------------------------------------------------------


def gate_reasons(
    losses: Sequence[float], scores: EvaluationScores, settings: Settings | None = None
) -> list[str]:
    """Why a version may not become the challenger; empty when it passes.

    Three checks: every training loss finite; the challenger's held-out preference accuracy at least
    ``gate_min_preference_accuracy``; no quality metric worse than the champion's (a registered
    version, or the base model) by more than ``gate_quality_tolerance`` of the champion's value.
    """
    settings = settings or get_settings()
    reasons = []
    bad = next(((step, loss) for step, loss in enumerate(losses, 1) if not math.isfinite(loss)), None)
    if not losses:
        reasons.append("training recorded no loss")
    elif bad is not None:
        reasons.append(f"training loss is not finite ({bad[1]} at step {bad[0]})")
    challenger = scores.metrics.get("challenger", {})
    accuracy = challenger.get(PREFERENCE_ACCURACY, math.nan)
    minimum = settings.gate_min_preference_accuracy
    if not accuracy >= minimum:  # a NaN accuracy fails too
        reasons.append(f"{PREFERENCE_ACCURACY} {accuracy:.3f} is below the minimum {minimum}")
    champion = scores.metrics.get("champion", {})
    reasons += quality_regressions(challenger, champion, settings.gate_quality_tolerance)
    return reasons


def _direction(metric: str) -> Direction | None:
    if metric in QUALITY_METRICS:
        return QUALITY_METRICS[metric]
    return "lower" if metric.startswith(_LOWER_IS_BETTER_PREFIXES) else None


def quality_regressions(
    challenger: Mapping[str, float], champion: Mapping[str, float], tolerance: float
) -> list[str]:
    """A reason for each quality metric on which the challenger is worse than the champion beyond
    ``tolerance`` (a share of the champion's value); a non-finite challenger value always fails."""
    reasons = []
    for metric in sorted(set(challenger) & set(champion)):
        direction = _direction(metric)
        if direction is None:
            continue
        new, old = challenger[metric], champion[metric]
        if direction == "consistency":  # compare the shortfall from a perfect 1.0: lower is better
            new, old, direction = 1.0 - new, 1.0 - old, "lower"
        worse_by = (new - old) if direction == "lower" else (old - new)
        if not math.isfinite(new) or worse_by > tolerance * max(abs(old), _FLOOR):
            reasons.append(
                f"{metric} {challenger[metric]:.4g} is worse than the champion's {champion[metric]:.4g}"
                f" by more than {tolerance:.0%}"
            )
    return reasons


# ---- lineage ------------------------------------------------------------------------------


def code_commit() -> str:
    """The git commit of this checkout (``-dirty`` with uncommitted changes), else the package version."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return head + ("-dirty" if status.strip() else "")
    except (OSError, subprocess.SubprocessError):
        try:
            return f"adfame=={version('adfame')}"
        except PackageNotFoundError:
            return "unknown"


def lineage_tags(
    *, manifest: ExportManifest, training_run: str, objective: str, scores: EvaluationScores
) -> dict[str, str]:
    """The version's lineage, as MLflow tags (strings)."""
    first, last = manifest.selection_seq
    tags = {
        LineageTag.BASE_MODEL: manifest.base_model,
        LineageTag.MILESTONE: str(manifest.milestone),
        LineageTag.SELECTION_RANGE: f"{first}..{last}",
        LineageTag.SELECTIONS: str(manifest.selections),
        LineageTag.EXPORT_URI: manifest.uri,
        LineageTag.EXPORT_MANIFEST: manifest.uri.rstrip("/") + "/" + MANIFEST_NAME,
        LineageTag.DATASET_SNAPSHOT: manifest.snapshot_id or "none",
        LineageTag.TRAINING_RUN: training_run,
        LineageTag.OBJECTIVE: objective,
        LineageTag.CODE_COMMIT: code_commit(),
    }
    tags.update({f"{LineageTag.EVAL_PREFIX}{name}": f"{value:.6g}" for name, value in scores.flat().items()})
    return {str(key): value for key, value in tags.items()}


# ---- registering --------------------------------------------------------------------------


def milestone_version(client: MlflowClient, name: str, milestone: int) -> Any | None:
    """The version of ``name`` registered for ``milestone`` (an MLflow ``ModelVersion``), or None."""
    from mlflow.exceptions import MlflowException

    query = f"name = '{name}' and tags.{LineageTag.MILESTONE} = '{milestone}'"
    try:
        found = client.search_model_versions(query)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if len(found) > 1:
        numbers = sorted(int(v.version) for v in found)
        raise RegistryError(f"{name} has {len(found)} versions for milestone {milestone}: {numbers}")
    if not found:
        return None
    # A search result may leave out the aliases (the REST store does); the version itself has them.
    return client.get_model_version(name, found[0].version)


def register_version(
    *,
    train: TrainResult,
    report: EvaluationReport | EvaluationScores,
    manifest: ExportManifest,
    settings: Settings | None = None,
    objective: str | None = None,
    tracking_uri: str | None = None,
) -> RegisteredVersion:
    """Register milestone ``manifest.milestone``'s LoRA once, with its lineage, and gate it.

    The model is logged in the training run (a new run when training logged none) and the version is
    created with every tag at once, so no version ever lacks its milestone. ``objective`` defaults to
    the one the training run logged; ``tracking_uri`` defaults to the settings' MLflow server.
    """
    settings = settings or get_settings()
    client = _mlflow_client(settings, tracking_uri)
    name = settings.registered_model
    existing = milestone_version(client, name, manifest.milestone)
    if existing is not None:
        return _finish_interrupted(client, existing)
    scores = EvaluationScores.from_report(report)
    reasons = gate_reasons(train.losses, scores, settings)
    objective = objective or _objective_of(client, train.run_id)
    created = _log_version(train, manifest, scores, objective, reasons, name)
    alias = None
    if not reasons:
        client.set_registered_model_alias(name, CHALLENGER_ALIAS, created)
        alias = CHALLENGER_ALIAS
    return RegisteredVersion(name, created, alias, reasons)


def _objective_of(client: MlflowClient, run_id: str | None) -> str:
    """The objective the training run logged among its parameters (``TrainConfig.objective``)."""
    if run_id is None:
        raise RegistryError("the training run was not tracked: pass the objective to register_version")
    return client.get_run(run_id).data.params.get("objective", "unknown")


def _mlflow_client(settings: Settings, tracking_uri: str | None) -> MlflowClient:
    import mlflow

    if tracking_uri is None:
        from adfame.mlflow_setup import configure_mlflow

        return configure_mlflow(settings)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _log_version(
    train: TrainResult,
    manifest: ExportManifest,
    scores: EvaluationScores,
    objective: str,
    reasons: list[str],
    name: str,
) -> str:
    """Log the model in the training run and create its version with every tag; returns its number."""
    import mlflow

    from training import pyfunc

    run_id = train.run_id
    tags = lineage_tags(manifest=manifest, training_run=run_id or "", objective=objective, scores=scores)
    tags[LineageTag.PARENT_VERSION] = train.parent or "none"
    tags[LineageTag.GATE] = "failed" if reasons else "passed"
    if reasons:
        tags[LineageTag.GATE_FAILED] = "; ".join(reasons)
    with mlflow.start_run(
        run_id=run_id, run_name=None if run_id else f"register-milestone-{manifest.milestone}"
    ):
        if run_id is None:
            tags[LineageTag.TRAINING_RUN] = mlflow.active_run().info.run_id
        info = pyfunc.log_model(
            Path(train.lora_dir),
            manifest.base_model,
            name=MODEL_ARTIFACT,
            registered_model_name=name,
            tags=tags,
            metadata={"milestone": manifest.milestone, "export": manifest.uri},
        )
    return str(info.registered_model_version)


def _finish_interrupted(client: MlflowClient, existing: Any) -> RegisteredVersion:
    """The milestone's version as registered before. A version that passed the gate but has no alias
    (the first run stopped between creating it and aliasing it) gets ``challenger`` now, unless
    another version holds that alias already."""
    tags = dict(existing.tags)
    reasons = [r for r in tags.get(LineageTag.GATE_FAILED, "").split("; ") if r]
    alias = CHALLENGER_ALIAS if CHALLENGER_ALIAS in existing.aliases else None
    if tags.get(LineageTag.GATE) == "passed" and not existing.aliases:
        from inference.model import resolve_alias

        if resolve_alias(client, CHALLENGER_ALIAS, existing.name) is None:
            client.set_registered_model_alias(existing.name, CHALLENGER_ALIAS, existing.version)
            alias = CHALLENGER_ALIAS
    return RegisteredVersion(existing.name, str(existing.version), alias, reasons, created=False)
