"""Runs one step of the curation pipeline (``etl.pipeline``) as an Airflow task.

The DAG only names the step; this operator turns the DAG run into an
``etl.pipeline.RunContext`` (snapshot id, work folder, config from the run's
conf) and calls the step. Heavy imports (Spark, pandas) happen at run time.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException


class EtlStepOperator(BaseOperator):
    """Call ``etl.pipeline.<step>(run_context)``; its summary dict becomes the task's XCom."""

    ui_color = "#d9ead3"

    def __init__(self, *, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step

    def execute(self, context: Context) -> dict[str, Any]:
        from etl import pipeline

        dag_run = context["dag_run"]
        run = pipeline.RunContext.from_dag_run(
            conf=dag_run.conf or {}, run_id=dag_run.run_id, run_after=dag_run.run_after
        )
        try:
            return getattr(pipeline, self.step)(run)
        except pipeline.GateFailed as exc:
            # Retrying cannot make bad data good: fail at once, before anything is loaded.
            raise AirflowFailException(str(exc)) from exc
