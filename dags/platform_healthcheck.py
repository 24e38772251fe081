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

from airflow.sdk import task

from operators.dag_defaults import adfame_dag

SERVICES = ["postgres", "object_store", "kafka", "mlflow"]

with adfame_dag(
    "platform_healthcheck",
    "@hourly",
    owner="platform",
    tags=["platform"],
    retry_delay=timedelta(seconds=20),
    doc_md=__doc__,
):

    @task
    def check(service: str) -> str:
        from adfame import health

        probe = getattr(health, service)()
        if not probe.ok:
            raise RuntimeError(f"{service} is unhealthy: {probe.detail}")
        return probe.detail

    check.expand(service=SERVICES)
