"""
### feedback_trigger_probe

A stand-in for `retrain_on_feedback` that the feedback tests point the retrain trigger at.
Its one task stores the conf it received (`milestone`, `selection_count`) in the
`dashboard_stats` table under the key `feedback_probe.<run_id>`, so a test can check that
each milestone started exactly one run with the right conf.

Never scheduled; only the API's milestone trigger (or a person) starts it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, get_current_context, task

STATS_KEY_PREFIX = "feedback_probe."


@dag(
    dag_id="feedback_trigger_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["adfame", "feedback", "test"],
    default_args={"owner": "feedback", "retries": 2, "retry_delay": timedelta(seconds=5)},
    doc_md=__doc__,
)
def feedback_trigger_probe() -> None:
    @task
    def record_conf() -> dict[str, Any]:
        import json

        from sqlalchemy import text

        from adfame.db import engine

        context = get_current_context()
        conf = dict(context["dag_run"].conf or {})
        with engine().begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO dashboard_stats (key, value) VALUES (:key, CAST(:value AS jsonb))"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                ),
                {"key": STATS_KEY_PREFIX + context["run_id"], "value": json.dumps(conf)},
            )
        return conf

    record_conf()


feedback_trigger_probe()
