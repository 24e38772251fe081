"""plugins/adfame_links.py, loaded as Airflow loads it: its plugins manager reading the plugins folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adfame.settings import PROJECT_ROOT, get_settings
from operators.mlflow_links import MlflowModelVersionLink, model_version_url


@pytest.fixture()
def plugins_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Airflow's plugins manager on the project's plugins folder, its caches empty before and after."""
    from airflow import plugins_manager, settings

    cached = [
        plugins_manager._get_plugins,
        plugins_manager._get_ui_plugins,
        plugins_manager._get_extra_operators_links_plugins,
    ]
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    yield plugins_manager
    for function in cached:
        function.cache_clear()


def test_airflow_loads_the_plugin_with_its_links(plugins_manager) -> None:
    settings = get_settings()
    assert plugins_manager.get_import_errors() == {}
    info = {plugin["name"]: plugin for plugin in plugins_manager.get_plugin_info()}
    assert "adfame_links" in info
    links = plugins_manager.get_operator_extra_links()
    assert [type(link).__name__ for link in links] == ["MlflowModelVersionLink"]

    # What GET /api/v2/plugins gives the UI; views with no url_route are links opened in a new tab.
    views = {view["name"]: view for view in info["adfame_links"]["external_views"]}
    dashboard = views["AdFame dashboard"]
    expected = settings.dashboard_url or f"http://{settings.host}:{settings.dashboard_port}"
    assert (dashboard["href"], dashboard["destination"]) == (expected, "nav")
    registry = views["MLflow model versions"]["href"]
    assert registry == f"{settings.mlflow_url}/#/models/{settings.registered_model}"


def test_the_link_opens_the_version_the_task_worked_on() -> None:
    from airflow.sdk import BaseOperator

    settings = get_settings()
    task = BaseOperator(task_id="register_step")
    link = MlflowModelVersionLink()
    assert link.get_link(task, ti_key=None) == ""  # no version known (a skipped or failed task)
    task.model_version_ref = ("adfame-wan-lora", "7")
    assert link.get_link(task, ti_key=None) == f"{settings.mlflow_url}/#/models/adfame-wan-lora/versions/7"
    assert model_version_url(settings, "a b", "1").endswith("/#/models/a%20b/versions/1")
