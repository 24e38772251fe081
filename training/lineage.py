"""Where a generated video came from: request -> model version -> training run -> export -> selections.

Why: a marketer's complaint about one video must lead to the data that shaped the model that made
it. Every link is already recorded where it is born (the request row names the version that served
it, the version's lineage tags name its training run and export, the export's manifest names its
selections and snapshot); this module only follows them. ``adfame lineage REQUEST_ID`` prints it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from adfame.repositories.requests import Job, get_job
from adfame.storage import ObjectStore
from inference.model import BASE_VERSION, parse_s3_uri
from training.export_layout import ExportManifest
from training.registry import LineageTag


class LineageError(LookupError):
    """A link of the chain is missing (an unknown request, a version or run that was deleted)."""


@dataclass(frozen=True)
class TrainingRun:
    """The MLflow run that trained a version: its id, name, state and parameters."""

    run_id: str
    name: str
    status: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Lineage:
    """The chain of one request; the links after the request are None when the base model served it."""

    job: Job
    version_tags: dict[str, str] | None = None
    aliases: list[str] = field(default_factory=list)
    training_run: TrainingRun | None = None
    manifest: ExportManifest | None = None


def trace_request(request_id: uuid.UUID | str, *, engine: Engine, client: Any, store: ObjectStore) -> Lineage:
    """Follow the chain from a request (``client``: an ``MlflowClient``); ``LineageError`` on a break."""
    try:
        request_id = uuid.UUID(str(request_id))
    except ValueError:
        raise LineageError(f"{request_id!r} is not a request id (a UUID)") from None
    job = get_job(engine, request_id)
    if job is None:
        raise LineageError(f"no generation request {request_id}")
    if job.model_version in (None, BASE_VERSION):
        return Lineage(job=job)
    name, _, number = job.model_version.rpartition("/")
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version(name, number)
        tags = dict(version.tags)
        run = client.get_run(tags[LineageTag.TRAINING_RUN]) if LineageTag.TRAINING_RUN in tags else None
    except MlflowException as exc:
        raise LineageError(
            f"request {request_id} names {job.model_version}, which MLflow cannot find: {exc}"
        ) from exc
    training_run = None
    if run is not None:
        training_run = TrainingRun(run.info.run_id, run.info.run_name, run.info.status, dict(run.data.params))
    manifest = (
        read_manifest(store, tags[LineageTag.EXPORT_MANIFEST]) if LineageTag.EXPORT_MANIFEST in tags else None
    )
    return Lineage(job, tags, list(version.aliases), training_run, manifest)


def read_manifest(store: ObjectStore, uri: str) -> ExportManifest:
    """The export manifest at ``s3://bucket/key``."""
    bucket, key = parse_s3_uri(uri)
    try:
        return ExportManifest.from_bytes(store.get_bytes(bucket, key))
    except Exception as exc:  # the store raises its own errors, pydantic its validation errors
        raise LineageError(f"could not read the export manifest {uri}: {exc}") from exc


def format_lineage(lineage: Lineage) -> str:
    """The chain as indented lines, one link per paragraph."""
    job = lineage.job
    lines = [
        f"request        {job.request_id}  tenant {job.tenant}  status {job.status}",
        f"  prompt       {job.prompt}",
        f"model version  {job.model_version or 'none recorded'}  (route {job.route or '-'})",
    ]
    tags = lineage.version_tags
    if tags is None:
        lines.append("  served by the base model: no training run, no export")
        return "\n".join(lines)
    lines += [
        f"  aliases      {', '.join(lineage.aliases) or 'none'}",
        f"  base model   {tags.get(LineageTag.BASE_MODEL, '?')}",
        f"  started from {tags.get(LineageTag.PARENT_VERSION, 'none')}",
        f"  gate         {tags.get(LineageTag.GATE, '?')}"
        + (f": {tags[LineageTag.GATE_FAILED]}" if LineageTag.GATE_FAILED in tags else ""),
        f"  code commit  {tags.get(LineageTag.CODE_COMMIT, '?')}",
    ]
    metrics = {key: value for key, value in sorted(tags.items()) if key.startswith(LineageTag.EVAL_PREFIX)}
    lines += [f"  {key:<28} {value}" for key, value in metrics.items()]
    lines += _run_lines(lineage.training_run, tags)
    lines += _export_lines(lineage.manifest, tags)
    return "\n".join(lines)


def _run_lines(run: TrainingRun | None, tags: dict[str, str]) -> list[str]:
    if run is None:
        return [f"training run   {tags.get(LineageTag.TRAINING_RUN, 'none recorded')}"]
    return [
        f"training run   {run.run_id}  ({run.name}, {run.status})",
        f"  objective    {tags.get(LineageTag.OBJECTIVE, run.params.get('objective', '?'))}"
        f"  steps {run.params.get('steps', '?')}",
    ]


def _export_lines(manifest: ExportManifest | None, tags: dict[str, str]) -> list[str]:
    if manifest is None:
        return [f"export         {tags.get(LineageTag.EXPORT_MANIFEST, 'none recorded')}"]
    first, last = manifest.selection_seq
    return [
        f"export         {tags[LineageTag.EXPORT_MANIFEST]}",
        f"  milestone    {manifest.milestone}: selections seq {first}..{last} ({manifest.selections};"
        f" {manifest.train} train, {manifest.heldout} held out)",
        f"  snapshot     {manifest.snapshot_id or 'none (no curated snapshot yet)'}"
        f"  (curated sample {manifest.curated_sample})",
    ]
