"""Runs one step of the curation pipeline (``etl.pipeline``) as an Airflow task.

The DAG names the step function; this operator turns the DAG run into an
``etl.pipeline.RunContext`` (snapshot id, work folder, config from the run's
conf) and calls it. Heavy imports (Spark, pandas) happen inside the step, at run time.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from etl.pipeline import EtlStep, GateFailed, RunContext


class EtlStepOperator(BaseOperator):
    """Call ``step(run_context)``; its summary dict becomes the task's XCom. The task id defaults to
    the step's name, so the DAG and the pipeline cannot drift apart."""

    ui_color = "#d9ead3"

    def __init__(self, *, step: EtlStep, task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(task_id=task_id or step.__name__, **kwargs)
        self.step = step

    def execute(self, context: Context) -> dict[str, Any]:
        dag_run = context["dag_run"]
        run = RunContext.from_dag_run(
            conf=dag_run.conf or {}, run_id=dag_run.run_id, run_after=dag_run.run_after
        )
        try:
            return self.step(run)
        except GateFailed as exc:
            # Retrying cannot make bad data good: fail at once, before anything is loaded.
            raise AirflowFailException(str(exc)) from exc
