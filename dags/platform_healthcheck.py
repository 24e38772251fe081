"""
### platform_healthcheck

Checks, from inside Airflow, that every service the AdFame loop depends on
answers: PostgreSQL, the object store (S3 API), Kafka and the MLflow server.
A failed task names the service and what its probe saw; the probes are the
same ones `adfame stack status` uses (`adfame.health`).

Runs hourly once unpaused; trigger it by hand after changing the stack.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

SERVICES = ["postgres", "object_store", "kafka", "mlflow"]


@dag(
    dag_id="platform_healthcheck",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["adfame", "platform"],
    default_args={"owner": "platform", "retries": 2, "retry_delay": timedelta(seconds=20)},
    doc_md=__doc__,
)
def platform_healthcheck() -> None:
    @task
    def check(service: str) -> str:
        from adfame import health

        probe = getattr(health, service)()
        if not probe.ok:
            raise RuntimeError(f"{service} is unhealthy: {probe.detail}")
        return probe.detail

    check.expand(service=SERVICES)


platform_healthcheck()
