"""Runs one step of ``training.retrain`` as an Airflow task of ``retrain_on_feedback``.

The DAG names the step function; this operator validates the run's conf (``RetrainConf``), hands the
step the previous task's output parsed into the type the step declares, and returns the step's output
as JSON for XCom. A bad conf fails the task at once, without retries; a version that failed the gate
skips ``announce_step``, so no asset event claims a challenger that does not exist.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import BaseModel

from operators.mlflow_links import MlflowModelVersionLink
from training.retrain import NoChallenger, Registered, RetrainConfError, parse_conf

RetrainStep = Callable[..., BaseModel]


def step_input(step: RetrainStep) -> type[BaseModel] | None:
    """The type of the step's second parameter (the previous step's output), or None for the first step."""
    names = [name for name in inspect.signature(step).parameters if name != "settings"]
    if len(names) < 2:
        return None
    return get_type_hints(step)[names[1]]


class RetrainStepOperator(BaseOperator):
    """Call ``step(conf, previous_output)``; the task id defaults to the step's name."""

    ui_color = "#fce5cd"
    # The registered version's page in MLflow, on the tasks whose output names one (register, announce).
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(self, *, step: RetrainStep, task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(task_id=task_id or step.__name__, **kwargs)
        self.step = step

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            conf = parse_conf(context["dag_run"].conf)
        except RetrainConfError as exc:
            raise AirflowFailException(str(exc)) from exc
        arguments: list[Any] = [conf]
        input_type = step_input(self.step)
        if input_type is not None:
            (upstream,) = self.upstream_task_ids
            arguments.append(input_type.model_validate(context["ti"].xcom_pull(task_ids=upstream)))
        try:
            output = self.step(*arguments)
        except NoChallenger as exc:
            raise AirflowSkipException(str(exc)) from exc
        if isinstance(output, Registered):
            self.model_version_ref = (output.name, output.version)
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {"name": output.name, "version": output.version}
        return output.model_dump(mode="json")
