"""AdFame's links in the Airflow UI: to the MLflow model version a task worked on, and to the dashboard.

Why: an operator looking at a canary or retrain run in Airflow wants the version's page in MLflow (its
aliases, lineage tags and source run) one click away, and the dashboard's plots next to the DAGs.

- ``MlflowModelVersionLink`` ("MLflow model version" on the task instance page) is carried by the
  retrain and canary operators (``operators/mlflow_links.py``); the task stores the link when it ends.
  It is registered here so that ``airflow plugins`` lists it with the rest of AdFame's UI additions.
- ``external_views``: entries under Browse in Airflow's navigation that open the dashboard
  (``ADFAME_DASHBOARD_URL``, default ``http://<host>:<dashboard_port>``) and the served registered model in
  MLflow, in a new tab (no ``url_route``: the pages are not framed, which MLflow and Streamlit refuse).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from adfame.settings import Settings, get_settings
from operators.mlflow_links import MlflowModelVersionLink, registered_model_url


def dashboard_url(settings: Settings) -> str:
    """Where people open the dashboard: the setting, or the local stack's Streamlit port."""
    return settings.dashboard_url or f"http://{settings.host}:{settings.dashboard_port}"


def external_views(settings: Settings) -> list[dict[str, Any]]:
    """The navigation entries (Airflow 3 ``external_views``) for this stack's settings."""
    return [
        {
            "name": "AdFame dashboard",
            "href": dashboard_url(settings),
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "MLflow model versions",
            "href": registered_model_url(settings, settings.registered_model),
            "destination": "nav",
            "category": "browse",
        },
    ]


class AdfameLinksPlugin(AirflowPlugin):
    """Loaded by Airflow's plugins manager from the plugins folder (``adfame stack up`` points it here)."""

    name = "adfame_links"
    operator_extra_links = [MlflowModelVersionLink()]
    external_views = external_views(get_settings())
