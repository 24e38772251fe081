"""Runs one step of monitoring as an Airflow task of the ``monitor`` DAG.

The DAG names the step function (``monitoring.quality.sample_quality``,
``monitoring.drift.check_prompt_drift``, ``monitoring.alerts.evaluate_alerts``); every step takes the
settings and the app database's engine, so this operator only builds those and returns the step's result
as JSON for XCom. A run's conf may override the monitoring settings (``quality_*``, ``drift_*``,
``alert_*``, ``retrain_on_alert``) for that run, as a test or an operator trying a threshold would; any
other key fails the task at once, without retries, naming the key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException
from pydantic import ValidationError
from sqlalchemy import Engine

from adfame.settings import Settings, get_settings

MonitorStep = Callable[[Settings, Engine], Any]
OVERRIDABLE_PREFIXES = ("quality_", "drift_", "alert_")
OVERRIDABLE = frozenset(
    name
    for name in Settings.model_fields
    if name.startswith(OVERRIDABLE_PREFIXES) or name == "retrain_on_alert"
)


def run_settings(conf: dict[str, Any] | None) -> Settings:
    """The process settings with the run's overrides, validated like the settings themselves."""
    conf = conf or {}
    unknown = sorted(set(conf) - OVERRIDABLE)
    if unknown:
        raise AirflowFailException(
            f"monitor conf keys {unknown} are not monitoring settings; use {sorted(OVERRIDABLE)}"
        )
    try:
        return Settings.model_validate({**get_settings().model_dump(), **conf})
    except ValidationError as exc:
        raise AirflowFailException(f"monitor conf is invalid: {exc}") from exc


def as_json(result: Any) -> Any:
    """A step's result (dataclasses, lists, None) as JSON-ready data for XCom."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    elif isinstance(result, list):
        result = [dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item for item in result]
    return json.loads(json.dumps(result, default=str))


class MonitorStepOperator(BaseOperator):
    """Call ``step(settings, engine)``; the task id defaults to the step's name."""

    ui_color = "#d9ead3"

    def __init__(self, *, step: MonitorStep, task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(task_id=task_id or step.__name__, **kwargs)
        self.step = step

    def execute(self, context: Context) -> Any:
        from adfame import db

        settings = run_settings(context["dag_run"].conf)
        engine = db.create_engine_for(settings)
        try:
            return as_json(self.step(settings, engine))
        finally:
            engine.dispose()
