"""What every AdFame DAG shares: a fixed start date, no catch-up runs, one run at a time, retries.

Written once so that a DAG file says only what is its own (id, schedule, owner, tags, docs), and
a change of policy (say, the retry delay of the whole platform) is one edit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


def adfame_dag(
    dag_id: str,
    schedule: str | timedelta | Asset | None,
    *,
    owner: str,
    tags: list[str],
    doc_md: str | None,
    retry_delay: timedelta,
    retries: int = 2,
    paused_at_creation: bool = True,
    params: dict[str, Any] | None = None,
) -> DAG:
    """A DAG with the platform's defaults; use it as ``with adfame_dag(...):`` in a DAG file.

    Missed intervals are not caught up (a night's data is fetched once, for the latest night), and
    a DAG never runs twice at once: a second run would only compete with the first for the same
    work folder or services. A DAG that events start (``paused_at_creation=False``) is live at once,
    since nobody stands by to unpause it before its first trigger. ``schedule`` may be an Asset (the DAG
    runs when a producer updates it); ``params`` are the run's parameters, which a trigger's conf overrides.
    """
    default_args: dict[str, Any] = {"owner": owner, "retries": retries, "retry_delay": retry_delay}
    return DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["adfame", *tags],
        default_args=default_args,
        doc_md=doc_md,
        is_paused_upon_creation=paused_at_creation,
        params=params,
    )
