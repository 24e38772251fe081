"""Where the pages read from: one database engine and one MLflow client per dashboard process, the shown
time window, and reads that explain a failure on the page instead of crashing it.

Why here: every page needs the same three things, and a dashboard whose database or registry is down
must still say so in words (which store, what failed, what to run) rather than show a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import streamlit as st
from mlflow.exceptions import MlflowException
from psycopg2.errors import UndefinedTable
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from adfame import db
from adfame.mlflow_setup import configure_mlflow
from adfame.settings import Settings, get_settings
from dashboard.transforms import since

T = TypeVar("T")

# The time windows a viewer can pick in the sidebar; None: everything stored.
WINDOWS: dict[str, timedelta | None] = {
    "last hour": timedelta(hours=1),
    "last 6 hours": timedelta(hours=6),
    "last 24 hours": timedelta(hours=24),
    "last 7 days": timedelta(days=7),
    "everything": None,
}
DEFAULT_WINDOW = "last 24 hours"
WINDOW_KEY = "window"


def settings() -> Settings:
    return get_settings()


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """The app database's engine, made once per dashboard process (every session shares its pool)."""
    return db.create_engine_for(get_settings())


@st.cache_resource(show_spinner=False)
def mlflow_client() -> Any:  # mlflow.MlflowClient
    """A client of the stack's MLflow server (registry and artifacts), made once per process."""
    return configure_mlflow(get_settings())


def window_start(now: datetime | None = None) -> datetime:
    """The start of the window chosen in the sidebar (``app.py`` draws the picker)."""
    name = st.session_state.get(WINDOW_KEY, DEFAULT_WINDOW)
    return since(now or datetime.now(UTC), WINDOWS.get(name, WINDOWS[DEFAULT_WINDOW]))


def from_database(what: str, read: Callable[..., T], *args: Any) -> T | None:
    """``read(engine, *args)``, or None after telling the viewer why the database could not answer.

    A missing table means a migration has not run (``adfame db upgrade``); anything else names the error.
    """
    try:
        return read(engine(), *args)
    except db.DatabaseUnavailable as error:
        st.error(f"{what}: {error}")
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        reason = str(cause).strip().splitlines()[0]
        hint = " (a migration has not run: `adfame db upgrade`)" if isinstance(cause, UndefinedTable) else ""
        st.error(f"{what}: the database refused the query: {reason}{hint}")
    return None


def from_registry(what: str, read: Callable[..., T], *args: Any) -> T | None:
    """``read(client, *args)``, or None after telling the viewer why MLflow could not answer."""
    try:
        return read(mlflow_client(), *args)
    except MlflowException as error:
        first = str(error).strip().splitlines()[0]
        st.warning(f"{what}: MLflow at {get_settings().mlflow_url} did not answer ({first}).")
    return None
