"""Models: the registered versions and their aliases, the canary's traffic history, each version's
evaluation against the champion with its video grid, and the quality sampled in production.

A page script: ``app.py`` runs it through ``st.navigation``. The versions, aliases and grids come from the
MLflow registry (``dashboard.registry``); the history, evaluations and quality from PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from adfame.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS
from adfame.repositories import dashboard as sql
from adfame.repositories import deployments, monitoring
from dashboard import charts, registry, sources, transforms

EVENT_COLUMNS = ["id", "model_version", "alias", "weight", "state", "reason", "actor", "at"]
METRIC_COLUMNS = ["name", "value", "labels", "model_version", "recorded_at"]
# The sampled production quality metrics (adfame.contracts.QUALITY_METRICS) share this prefix.
QUALITY_PREFIX = "quality."


def render() -> None:
    """The page, one section per source; each explains its own empty state."""
    model = sources.settings().registered_model
    st.title(f"Models: `{model}`")
    versions = sources.from_registry("registered versions", registry.model_versions, model)
    _render_versions(versions)
    _render_canary(model)
    _render_evaluation(model, versions)
    _render_quality()


def _alias_version(versions: pd.DataFrame | None, alias: str) -> str | None:
    if versions is None or versions.empty:
        return None
    holders = versions[versions["aliases"].str.split(", ").apply(lambda names: alias in names)]
    return None if holders.empty else str(holders["version"].iloc[0])


def _render_versions(versions: pd.DataFrame | None) -> None:
    if versions is None:
        return
    if versions.empty:
        st.info(
            "No version is registered yet: `retrain_on_feedback` registers one per milestone of 200 picks. "
            "Until a version carries alias champion, the base model serves every request."
        )
        return
    cards = st.columns(3)
    cards[0].metric("Versions", len(versions))
    cards[1].metric("Champion", _alias_version(versions, CHAMPION_ALIAS) or "base model")
    cards[2].metric("Challenger", _alias_version(versions, CHALLENGER_ALIAS) or "none")
    st.dataframe(versions.dropna(axis="columns", how="all"), hide_index=True, width="stretch")


def _render_canary(model: str) -> None:
    st.subheader("Canary rollout")
    events = sources.from_database("rollout history", deployments.deployment_events, model)
    if events is None:
        return
    if not events:
        st.info("No rollout action yet: `canary_rollout` (or `adfame canary start`) writes one per step.")
        return
    history = transforms.weight_history(transforms.records(events, EVENT_COLUMNS), datetime.now(UTC))
    st.altair_chart(charts.weight_history(history), width="stretch")


def _render_evaluation(model: str, versions: pd.DataFrame | None) -> None:
    """A version's metrics against the champion it was measured with, and its grid of videos."""
    st.subheader("Evaluation")
    evaluations = sources.from_database("evaluations", sql.evaluations, model)
    if evaluations is None:
        return
    if evaluations.empty:
        st.info(
            "No evaluation recorded yet: `retrain_on_feedback` evaluates each version before registering it."
        )
        return
    evaluated = list(dict.fromkeys(evaluations["model_version"]))
    preferred = _alias_version(versions, CHALLENGER_ALIAS)
    index = evaluated.index(preferred) if preferred in evaluated else 0
    version = st.selectbox("Version", evaluated, index=index, help="whose evaluation is shown")
    chosen = evaluations[evaluations["model_version"] == version]
    st.altair_chart(
        charts.evaluation(transforms.evaluation_comparison(evaluations, version)), width="content"
    )
    fairness = transforms.evaluation_comparison(evaluations, version, fairness=True)
    if not fairness.empty:
        title = "Fairness: each metric's spread across demographic variants (lower is fairer)"
        st.altair_chart(charts.evaluation(fairness, title), width="content")
    skipped = chosen[chosen["value"].isna()][["role", "metric", "skipped_reason"]]
    if not skipped.empty:
        st.caption(
            "Not measured: " + "; ".join(sorted(set(skipped["metric"] + ": " + skipped["skipped_reason"])))
        )
    _render_grid(str(chosen["run_id"].dropna().iloc[0]) if chosen["run_id"].notna().any() else None)


@st.cache_data(ttl=600, show_spinner="Downloading the grid from MLflow ...")
def _grid(run_id: str, artifact_path: str) -> bytes | None:
    return registry.grid_video(sources.mlflow_client(), run_id, artifact_path)


def _render_grid(run_id: str | None) -> None:
    if run_id is None:
        st.info("This evaluation names no MLflow run, so there is no grid to show.")
        return
    label = st.radio("Grid", list(registry.GRIDS), horizontal=True)
    found = sources.from_registry("evaluation grid", lambda _client: (_grid(run_id, registry.GRIDS[label]),))
    if found is None:
        return
    video = found[0]
    if video is None:
        st.info(f"Run {run_id} holds no `{registry.GRIDS[label]}`.")
        return
    st.caption(f"Champion left, challenger right; one row per case (MLflow run `{run_id}`).")
    st.video(video, format="video/mp4", loop=True, autoplay=True, muted=True, width=480)


def _render_quality() -> None:
    st.subheader("Production quality")
    points = sources.from_database(
        "quality metrics", monitoring.metric_points, QUALITY_PREFIX, sources.window_start()
    )
    if points is None:
        return
    if not points:
        st.info("No sampled quality in this window: the `monitor` DAG scores a sample of served candidates.")
        return
    st.altair_chart(charts.quality(transforms.records(points, METRIC_COLUMNS)), width="content")


if __name__ == "__main__":
    render()
