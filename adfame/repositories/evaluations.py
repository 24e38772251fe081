"""SQL of ``model_evaluations``: each registered version's evaluation, one row per model and metric.

Why one module: the gate, the canary rollout and monitoring read what ``training.evaluation``
recorded, and "re-recording an evaluation replaces it" is one upsert that every writer must share.
What the metrics mean stays with ``training.metrics``; this module stores numbers and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, text

ROLES = ("challenger", "champion")


@dataclass(frozen=True)
class MetricRow:
    """One metric of one evaluated model; ``value`` is None exactly when ``skipped_reason`` says why."""

    role: str  # "challenger" (the version under review) or "champion" (what it would replace)
    evaluated_model: str  # the LoRA's location, or "base"
    metric: str
    value: float | None
    skipped_reason: str | None = None


@dataclass(frozen=True)
class EvaluationContext:
    """What every row of one evaluation shares."""

    model_name: str
    model_version: str
    run_id: str | None
    heldout_pairs: int
    frame_encoder: str
    reference_snapshot_id: str | None


@dataclass(frozen=True)
class StoredMetric:
    role: str
    evaluated_model: str
    metric: str
    value: float | None
    skipped_reason: str | None
    run_id: str | None
    heldout_pairs: int
    frame_encoder: str
    reference_snapshot_id: str | None
    evaluated_at: datetime


_UPSERT = """
insert into model_evaluations (model_name, model_version, role, evaluated_model, metric, value,
    skipped_reason, run_id, heldout_pairs, frame_encoder, reference_snapshot_id)
values (:model_name, :model_version, :role, :evaluated_model, :metric, :value,
    :skipped_reason, :run_id, :heldout_pairs, :frame_encoder, :reference_snapshot_id)
on conflict (model_name, model_version, role, metric) do update set
    evaluated_model = excluded.evaluated_model, value = excluded.value,
    skipped_reason = excluded.skipped_reason, run_id = excluded.run_id,
    heldout_pairs = excluded.heldout_pairs, frame_encoder = excluded.frame_encoder,
    reference_snapshot_id = excluded.reference_snapshot_id, evaluated_at = now()
"""
_SELECT = """
select role, evaluated_model, metric, value, skipped_reason, run_id, heldout_pairs, frame_encoder,
    reference_snapshot_id, evaluated_at
from model_evaluations where model_name = :name and model_version = :version
order by role, metric
"""


def upsert_evaluation(engine: Engine, context: EvaluationContext, rows: Sequence[MetricRow]) -> int:
    """Store an evaluation's rows in one transaction, replacing the version's earlier ones; returns how many.

    A metric recorded before but absent now is removed, so the stored evaluation is exactly the latest one.
    """
    shared = asdict(context)
    with engine.begin() as conn:
        conn.execute(
            text(
                "delete from model_evaluations where model_name = :model_name"
                " and model_version = :model_version and not (role || ':' || metric = any(:keys))"
            ),
            {**shared, "keys": [f"{row.role}:{row.metric}" for row in rows]},
        )
        for row in rows:
            conn.execute(text(_UPSERT), {**shared, **asdict(row)})
    return len(rows)


def evaluation_of(engine: Engine, model_name: str, model_version: str) -> list[StoredMetric]:
    """Every stored metric of a version's evaluation (both roles), ordered by role and metric."""
    with engine.connect() as conn:
        rows = conn.execute(text(_SELECT), {"name": model_name, "version": model_version}).mappings()
        return [StoredMetric(**row) for row in rows]


def metric_values(engine: Engine, model_name: str, model_version: str, role: str) -> dict[str, float | None]:
    """``metric -> value`` of one role of a version's evaluation (None for a skipped metric)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return {m.metric: m.value for m in evaluation_of(engine, model_name, model_version) if m.role == role}
