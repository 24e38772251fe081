"""Read-side SQL of the dashboard: aggregations over the datasets, serving, selection and rollout tables.

Why one module: the dashboard only reads, and each chart wants the database to do the counting (a
minute's arrivals, a percentile, a tag's frequency) so that a page load moves a few hundred rows, not a
table. The tables' meaning stays with their own repositories (``datasets``, ``requests``,
``selections``, ``deployments``, ``evaluations``, ``monitoring``); the rollout history, drift
reports, alerts and quality metrics are read through ``deployments``' and ``monitoring``'s own
functions. Every function returns a ``pandas.DataFrame`` with fixed columns, empty when there is
nothing yet, so a page can test ``.empty`` and explain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text


def _frame(engine: Engine, sql: str, params: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    """The query's rows under ``columns`` (the select list's order), typed by pandas; empty keeps them."""
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    return pd.DataFrame([tuple(row) for row in rows], columns=columns)


# ---- offline: curated snapshots -----------------------------------------------------------------

_SNAPSHOT_SIZES = """
select s.snapshot_id, s.created_at, count(c.id) as clips,
    coalesce((s.stats->>'bytes')::bigint, 0) as bytes,
    coalesce((s.stats->>'seconds_of_video')::float8, 0) as seconds_of_video,
    coalesce((s.stats->>'corrupt')::int, 0) as corrupt,
    coalesce((s.stats->>'corrupt_share')::float8, 0) as corrupt_share
from dataset_snapshots s left join dataset_clips c using (snapshot_id)
group by s.snapshot_id order by s.created_at, s.snapshot_id
"""


def snapshot_sizes(engine: Engine) -> pd.DataFrame:
    """One row per snapshot, oldest first: loaded clips (counted), bytes, seconds, corrupt count and share
    (the extraction's numbers, kept in the snapshot's stats)."""
    columns = ["snapshot_id", "created_at", "clips", "bytes", "seconds_of_video", "corrupt", "corrupt_share"]
    return _frame(engine, _SNAPSHOT_SIZES, {}, columns)


_SPLIT_COUNTS = """
select c.snapshot_id, s.created_at, c.split, count(*) as clips
from dataset_clips c join dataset_snapshots s using (snapshot_id)
group by c.snapshot_id, s.created_at, c.split order by s.created_at, c.snapshot_id, c.split
"""


def split_counts(engine: Engine) -> pd.DataFrame:
    """Clips per snapshot and split (train, val, test), counted from ``dataset_clips``."""
    return _frame(engine, _SPLIT_COUNTS, {}, ["snapshot_id", "created_at", "split", "clips"])


_TAG_COUNTS = """
select tag, split_part(tag, ':', 1) as category,
    case when position(':' in tag) > 0 then substr(tag, position(':' in tag) + 1) else tag end as value,
    count(*) as clips
from dataset_clips, unnest(tags) as tag
where snapshot_id = :snapshot_id
group by tag order by clips desc, tag
"""


def tag_counts(engine: Engine, snapshot_id: str) -> pd.DataFrame:
    """How many of a snapshot's clips carry each tag; a tag ``brand:nike`` is category ``brand``, value
    ``nike`` (the curation's ``category:value`` tags, ``spark_jobs/text.py``)."""
    return _frame(engine, _TAG_COUNTS, {"snapshot_id": snapshot_id}, ["tag", "category", "value", "clips"])


_ETL_RUNS = """
select id, dag_run_id, started_at, finished_at, status, snapshot_id,
    extract(epoch from finished_at - started_at)::float8 as seconds
from etl_runs order by started_at desc limit :limit
"""


def etl_runs(engine: Engine, limit: int = 50) -> pd.DataFrame:
    """The latest ETL runs, newest first, with how long each took."""
    columns = ["id", "dag_run_id", "started_at", "finished_at", "status", "snapshot_id", "seconds"]
    return _frame(engine, _ETL_RUNS, {"limit": limit}, columns)


# ---- online: requests, outcomes, latency, picks -------------------------------------------------

_ARRIVALS = """
select date_trunc('minute', submitted_at) as minute, count(*) as requests
from generation_requests where submitted_at >= :since
group by minute order by minute
"""


def arrivals_per_minute(engine: Engine, since: datetime) -> pd.DataFrame:
    """Prompts submitted per minute since ``since`` (minutes without any are absent)."""
    return _frame(engine, _ARRIVALS, {"since": since}, ["minute", "requests"])


_OUTCOMES = """
select date_trunc('minute', finished_at) as minute, status, coalesce(route, 'none') as route,
    count(*) as requests
from generation_requests
where finished_at >= :since and status in ('succeeded', 'failed')
group by minute, status, route order by minute, status, route
"""


def outcomes_per_minute(engine: Engine, since: datetime) -> pd.DataFrame:
    """Finished requests per minute, status (succeeded, failed) and route; a failed one has no route
    when it failed before the worker chose one (``none``)."""
    return _frame(engine, _OUTCOMES, {"since": since}, ["minute", "status", "route", "requests"])


_LATENCY = """
select minute, count(*) as requests,
    percentile_cont(0.5) within group (order by seconds) as p50,
    percentile_cont(0.95) within group (order by seconds) as p95,
    percentile_cont(0.99) within group (order by seconds) as p99
from (
    select date_trunc('minute', finished_at) as minute,
        extract(epoch from finished_at - submitted_at)::float8 as seconds
    from generation_requests where finished_at >= :since and status = 'succeeded'
) finished
group by minute order by minute
"""


def latency_per_minute(engine: Engine, since: datetime) -> pd.DataFrame:
    """Percentiles (50, 95, 99) of a succeeded request's end-to-end seconds, submitted to finished (what a
    marketer waits, queueing included), per minute it finished in."""
    return _frame(engine, _LATENCY, {"since": since}, ["minute", "requests", "p50", "p95", "p99"])


# The phases of a request one after another, as the worker times them (inference/worker.py, ``serve``):
# submitted -> received, the version switch, denoising, decoding, encoding and uploading the candidates.
# Its other timings overlap these (``kafka_lag_s`` is part of the queue wait, ``encode_s`` and ``upload_s``
# are summed inside ``store_s``) or add them up (``total_s``), so a stack of them would count twice.
SEQUENTIAL_PHASES = ("queue_wait_s", "activate_s", "denoise_s", "decode_s", "store_s")

_STAGE_SECONDS = """
select coalesce(r.route, 'none') as route, t.key as stage, avg(t.value::float8) as mean_s,
    count(*) as requests
from generation_requests r, jsonb_each_text(r.timings) as t
where r.finished_at >= :since and r.status = 'succeeded' and t.key = any(:phases)
group by route, stage order by route, stage
"""


def stage_seconds(engine: Engine, since: datetime) -> pd.DataFrame:
    """Mean seconds of each of the ``SEQUENTIAL_PHASES`` per route, over the succeeded requests since
    ``since``: stacked, they are where a request's time went."""
    params = {"since": since, "phases": list(SEQUENTIAL_PHASES)}
    return _frame(engine, _STAGE_SECONDS, params, ["route", "stage", "mean_s", "requests"])


_ERRORS = """
select finished_at, tenant, coalesce(route, 'none') as route, model_version, error
from generation_requests
where finished_at >= :since and status = 'failed'
order by finished_at desc limit :limit
"""


def recent_errors(engine: Engine, since: datetime, limit: int = 20) -> pd.DataFrame:
    """The latest failed requests since ``since`` with their error, newest first."""
    columns = ["finished_at", "tenant", "route", "model_version", "error"]
    return _frame(engine, _ERRORS, {"since": since, "limit": limit}, columns)


_OFFERS = """
select r.request_id::text as request_id, r.prompt, c.candidate_index, c.variation_prompt,
    c.candidate_index = s.candidate_index as picked
from selections s
join generation_requests r using (request_id)
join candidates c on c.request_id = s.request_id
where s.selected_at >= :since
order by s.seq, c.candidate_index
"""


def selection_offers(engine: Engine, since: datetime) -> pd.DataFrame:
    """Every candidate shown to a marketer who picked since ``since``: its position, its variation prompt
    (the request's prompt plus the shot modifiers, ``inference/variations.py``) and whether it won."""
    columns = ["request_id", "prompt", "candidate_index", "variation_prompt", "picked"]
    return _frame(engine, _OFFERS, {"since": since}, columns)


# ---- models: evaluations ----------------------------------------------------

_EVALUATIONS = """
select model_version, role, metric, value, skipped_reason, run_id, heldout_pairs, evaluated_at
from model_evaluations where model_name = :model_name
order by evaluated_at desc, model_version, role, metric
"""


def evaluations(engine: Engine, model_name: str) -> pd.DataFrame:
    """Every stored evaluation of the model's versions (both roles), newest first."""
    columns = [
        "model_version",
        "role",
        "metric",
        "value",
        "skipped_reason",
        "run_id",
        "heldout_pairs",
        "evaluated_at",
    ]
    return _frame(engine, _EVALUATIONS, {"model_name": model_name}, columns)
