"""SQL of ``deployments`` and ``deployment_events``: what serves how much, and how it got there.

Why one module: the rollout writes a version's traffic weight and state, every worker reads the weight
to route a canary, and the dashboard plots the history; one place keeps the meaning of "the live canary"
the same for all of them. Every change of a ``deployments`` row goes through ``insert_deployment`` or
``update_deployment``, which append its ``deployment_events`` row in the caller's transaction, so the
history cannot miss a change. Functions taking a ``Connection`` join the caller's transaction (the
rollout holds row locks across its MLflow calls); those taking an ``Engine`` run their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, Engine, text

DeploymentState = Literal["pending", "canary", "promoted", "rolled_back", "retired"]
LIVE_STATES = ("canary", "promoted")  # at most one live row per model and alias (a unique index)


@dataclass(frozen=True)
class Deployment:
    """One version behind one alias, with its share of traffic and its state."""

    id: int
    model_name: str
    model_version: str
    alias: str
    traffic_weight: int
    state: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeploymentEvent:
    """One change of a deployment as it was made: the row's weight and state after it, who and why."""

    id: int
    deployment_id: int
    model_name: str
    model_version: str
    alias: str
    weight: int
    state: str
    reason: str | None
    actor: str
    at: datetime


@dataclass(frozen=True)
class RoutingState:
    """What a worker needs per request: the live canary's version and weight, and the latest event's id.

    ``last_event_id`` changes with every rollout action, which tells a worker to re-read the registry's
    aliases at once instead of waiting for its refresh period.
    """

    canary_version: str | None
    canary_weight: int
    last_event_id: int | None


_COLUMNS = "id, model_name, model_version, alias, traffic_weight, state, reason, created_at, updated_at"

_APPEND_EVENT = """
insert into deployment_events (deployment_id, model_name, model_version, alias, weight, state, reason, actor)
values (:id, :model_name, :model_version, :alias, :traffic_weight, :state, :reason, :actor)
"""


def _append_event(conn: Connection, deployment: Deployment, actor: str) -> None:
    conn.execute(text(_APPEND_EVENT), {**deployment.__dict__, "actor": actor})


def lock_rollout(conn: Connection, model_name: str) -> None:
    """Hold the model's rollout lock until the caller's transaction ends: one rollout action per model at
    a time, so two starts of the same canary (a webhook and the DAG) or a rollback racing a promotion
    each see what the other left. A lock on the name rather than on rows covers the first start too,
    when there is no row to lock yet."""
    conn.execute(
        text("select pg_advisory_xact_lock(hashtext('deployments:' || :model))"), {"model": model_name}
    )


def live_deployment(conn: Connection, model_name: str, alias: str) -> Deployment | None:
    """The model's live (canary or promoted) row under ``alias``."""
    row = (
        conn.execute(
            text(
                f"select {_COLUMNS} from deployments where model_name = :model and alias = :alias"
                " and state = any(:live)"
            ),
            {"model": model_name, "alias": alias, "live": list(LIVE_STATES)},
        )
        .mappings()
        .first()
    )
    return Deployment(**row) if row is not None else None


def latest_deployment(conn: Connection, model_name: str) -> Deployment | None:
    """The model's most recently changed row, live or not: what the last rollout action left.

    An action's rows share their transaction's time; the tie goes to the newest row, which is the
    canary's (a champion's row is always written before the canary that replaces or joins it).
    """
    row = (
        conn.execute(
            text(
                f"select {_COLUMNS} from deployments where model_name = :model"
                " order by updated_at desc, id desc limit 1"
            ),
            {"model": model_name},
        )
        .mappings()
        .first()
    )
    return Deployment(**row) if row is not None else None


def insert_deployment(
    conn: Connection,
    model_name: str,
    model_version: str,
    alias: str,
    *,
    weight: int,
    state: DeploymentState,
    reason: str | None,
    actor: str,
) -> Deployment:
    """A new row and its first event, in the caller's transaction."""
    row = (
        conn.execute(
            text(
                "insert into deployments (model_name, model_version, alias, traffic_weight, state, reason)"
                f" values (:model, :version, :alias, :weight, :state, :reason) returning {_COLUMNS}"
            ),
            {
                "model": model_name,
                "version": model_version,
                "alias": alias,
                "weight": weight,
                "state": state,
                "reason": reason,
            },
        )
        .mappings()
        .one()
    )
    deployment = Deployment(**row)
    _append_event(conn, deployment, actor)
    return deployment


def update_deployment(
    conn: Connection,
    deployment_id: int,
    *,
    weight: int,
    state: DeploymentState,
    reason: str | None,
    actor: str,
    alias: str | None = None,
) -> Deployment:
    """Change a row's weight, state, reason (and alias, on promotion) and append the event."""
    row = (
        conn.execute(
            text(
                "update deployments set traffic_weight = :weight, state = :state, reason = :reason,"
                f" alias = coalesce(:alias, alias) where id = :id returning {_COLUMNS}"
            ),
            {"id": deployment_id, "weight": weight, "state": state, "reason": reason, "alias": alias},
        )
        .mappings()
        .one()
    )
    deployment = Deployment(**row)
    _append_event(conn, deployment, actor)
    return deployment


def routing_state(engine: Engine, model_name: str, alias: str) -> RoutingState:
    """The live canary under ``alias`` (version and weight; None and 0 when there is none) and the id of
    the model's latest deployment event, in one round trip."""
    with engine.connect() as conn:
        row = conn.execute(
            text("""
            select
                (select model_version from deployments
                 where model_name = :model and alias = :alias and state = 'canary') as version,
                (select traffic_weight from deployments
                 where model_name = :model and alias = :alias and state = 'canary') as weight,
                (select max(id) from deployment_events where model_name = :model) as last_event_id
            """),
            {"model": model_name, "alias": alias},
        ).one()
    return RoutingState(row.version, int(row.weight or 0), row.last_event_id)


def deployment_events(
    engine: Engine, model_name: str, since: datetime | None = None
) -> list[DeploymentEvent]:
    """The model's events in the order they happened (from ``since`` on, when given)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select id, deployment_id, model_name, model_version, alias, weight, state, reason, actor, at"
                " from deployment_events where model_name = :model"
                " and (cast(:since as timestamptz) is null or at >= :since) order by id"
            ),
            {"model": model_name, "since": since},
        ).mappings()
        return [DeploymentEvent(**row) for row in rows]
