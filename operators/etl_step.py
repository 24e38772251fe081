"""Runs one step of the curation pipeline (``etl.pipeline``) as an Airflow task.

The DAG names the step function; this operator turns the DAG run into an
``etl.pipeline.RunContext`` (snapshot id, work folder, config from the run's
conf) and calls it. Heavy imports (Spark, pandas) happen inside the step, at run time.
An error the run's input causes (``etl.errors.EtlInputError``: a bad conf, a failed gate, a value
the tables cannot hold) fails the task at once, without retries; a task that fails for good marks the
run's ``etl_runs`` row failed, with the task and its error (``record_failed_run``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from etl.errors import EtlInputError
from etl.pipeline import EtlStep, RunContext, record_failure, snapshot_id_of


def record_failed_run(context: Context) -> None:
    """``on_failure_callback``: Airflow calls it once a task has failed for good (retries spent, or
    failed at once), in the task's process, with the error in the context."""
    dag_run = context["dag_run"]
    error = context.get("exception") or "the task failed without an error (killed or timed out)"
    if isinstance(error, AirflowFailException) and error.__cause__ is not None:
        error = error.__cause__  # the step's own error, which names the cause
    snapshot_id = snapshot_id_of(dag_run.conf or {}, dag_run.run_after)
    record_failure(dag_run.run_id, snapshot_id, context["ti"].task_id, error)


class EtlStepOperator(BaseOperator):
    """Call ``step(run_context)``; its summary dict becomes the task's XCom. The task id defaults to
    the step's name, so the DAG and the pipeline cannot drift apart."""

    ui_color = "#d9ead3"

    def __init__(self, *, step: EtlStep, task_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("on_failure_callback", record_failed_run)
        super().__init__(task_id=task_id or step.__name__, **kwargs)
        self.step = step

    def execute(self, context: Context) -> dict[str, Any]:
        dag_run = context["dag_run"]
        try:
            run = RunContext.from_dag_run(
                conf=dag_run.conf or {}, run_id=dag_run.run_id, run_after=dag_run.run_after
            )
            return self.step(run)
        except EtlInputError as exc:
            # Retrying cannot make bad data (or a bad conf) good: fail at once, naming what was wrong.
            raise AirflowFailException(str(exc)) from exc
