"""SQL of ``deployments`` (and, as the monitoring issue lands, ``monitoring_metrics``): what serves how much.

Why one module: the rollout writes a version's traffic weight and state, and every worker reads the
weight to route a canary; one place keeps the meaning of "the live canary" the same for both.
"""

from __future__ import annotations

from sqlalchemy import Engine, text


def canary_weight(engine: Engine, model_name: str, alias: str) -> int:
    """The traffic share (0..100) of the model's live canary under ``alias``; 0 when there is none."""
    with engine.connect() as conn:
        weight = conn.execute(
            text("""
            select traffic_weight from deployments
            where alias = :alias and state = 'canary' and model_name = :model
            order by updated_at desc limit 1"""),
            {"alias": alias, "model": model_name},
        ).scalar()
    return int(weight or 0)
