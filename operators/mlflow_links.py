"""A button on a task in the Airflow UI that opens the MLflow model version the task worked on.

Why here: the retrain and canary operators carry it (``operator_extra_links``), and an operator may not
import ``plugins/``. In Airflow 3 the task itself computes the link when it ends and stores it as an XCom
(``_link_MlflowModelVersionLink``), which the UI reads; ``plugins/adfame_links.py`` registers the class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

from adfame.settings import Settings, get_settings

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def registered_model_url(settings: Settings, name: str) -> str:
    """The registered model's page in the MLflow UI."""
    return f"{settings.mlflow_url}/#/models/{quote(name, safe='')}"


def model_version_url(settings: Settings, name: str, version: str) -> str:
    """One version's page in the MLflow UI (its aliases, tags, lineage and source run)."""
    return f"{registered_model_url(settings, name)}/versions/{quote(str(version), safe='')}"


class MlflowModelVersionLink(BaseOperatorLink):
    """Opens ``operator.model_version_ref`` (name, version), which the operator sets once it knows it."""

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        ref: tuple[str, str] | None = getattr(operator, "model_version_ref", None)
        if ref is None:  # the task ended before it knew its version (a bad conf, a skip)
            return ""
        return model_version_url(get_settings(), *ref)
