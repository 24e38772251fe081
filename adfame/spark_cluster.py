"""The stack's Spark standalone cluster as its master and worker report it: the JSON of their web UIs.

Why one module: the stack's probes (is the master alive, has the worker registered with it) and the
tests that check where a job ran (which applications the master saw, which executors the worker ran)
read the same documents, ``http://<host>:<web port>/json/``, the one status Spark's standalone daemons
serve without their REST submission server (left off).
"""

from __future__ import annotations

from typing import Any

import httpx

from adfame.settings import Settings, get_settings


class SparkStatusUnavailable(Exception):
    """A daemon's status page did not answer with JSON (not running, starting, or another server)."""


def master_web_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"http://{settings.host}:{settings.spark_master_web_port}"


def worker_web_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"http://{settings.host}:{settings.spark_worker_web_port}"


def _status(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(f"{url}/json/", timeout=3)
        response.raise_for_status()
        return dict(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise SparkStatusUnavailable(f"{url}/json/: {exc.__class__.__name__}: {exc}") from exc


def master_status(settings: Settings | None = None) -> dict[str, Any]:
    """The master's status: ``status`` (ALIVE), ``workers``, ``activeapps``, ``completedapps``."""
    return _status(master_web_url(settings))


def worker_status(settings: Settings | None = None) -> dict[str, Any]:
    """The worker's status: its ``id``, ``masterurl``, ``cores``, ``executors``, ``finishedexecutors``."""
    return _status(worker_web_url(settings))


def applications(name: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The applications called ``name`` the master knows, running or completed, oldest first."""
    status = master_status(settings)
    apps = [*status.get("completedapps", []), *status.get("activeapps", [])]
    return sorted((app for app in apps if app.get("name") == name), key=lambda app: app["starttime"])


def executors(app_id: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The executors the stack's worker ran (or runs) for the application ``app_id``."""
    status = worker_status(settings)
    ran = [*status.get("finishedexecutors", []), *status.get("executors", [])]
    return [executor for executor in ran if executor.get("appid") == app_id]
