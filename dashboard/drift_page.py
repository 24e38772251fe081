"""Drift: whether live prompts moved away from the training captions, which kinds of prompt arrive, and
the alerts monitoring raised.

A page script: ``app.py`` runs it through ``st.navigation``. Read from ``drift_reports`` and ``alerts``
(written by the ``monitor`` DAG and the canary's rollback; ``adfame.repositories.monitoring``) over the
sidebar's time window.
"""

from __future__ import annotations

import streamlit as st

from adfame.repositories import monitoring
from dashboard import charts, sources, transforms

REPORT_COLUMNS = ["window_start", "window_end", "reference", "score", "threshold", "drifted", "details"]
ALERT_COLUMNS = ["id", "kind", "subject", "message", "details", "raised_at", "window_end", "retrain_run_id"]


def render() -> None:
    """The page: the drift statistic against its threshold, prompt clusters over time, then the alerts."""
    st.title("Drift and alerts")
    start = sources.window_start()
    reports = sources.from_database("drift reports", monitoring.drift_reports_since, start)
    if reports is not None:
        _render_drift(transforms.records(reports, REPORT_COLUMNS))
    alerts = sources.from_database("alerts", monitoring.alerts_since, start)
    if alerts is not None:
        _render_alerts(transforms.records(alerts, ALERT_COLUMNS))


def _render_drift(reports) -> None:
    if reports.empty:
        st.info(
            "No drift report in this window: the `monitor` DAG tests each window of live prompts against the "
            "training captions once it holds enough prompts (`ADFAME_DRIFT_MIN_PROMPTS`)."
        )
        return
    frame = transforms.drift_frame(reports)
    latest = frame.iloc[-1]
    cards = st.columns(3)
    cards[0].metric("Windows tested", len(frame))
    cards[1].metric("Drifted windows", int(frame["drifted"].sum()))
    p_value = latest["p_value"]
    cards[2].metric("Latest p-value", "n/a" if p_value is None else f"{p_value:.3f}")
    st.altair_chart(charts.drift_score(frame), width="stretch")
    clusters = transforms.cluster_shares(reports)
    if clusters.empty:
        st.info("These drift reports carry no prompt clusters.")
    else:
        st.altair_chart(charts.cluster_shares(clusters), width="stretch")


def _render_alerts(alerts) -> None:
    st.subheader("Alerts")
    if alerts.empty:
        st.success("No alert in this window (latency, error rate, quality drop, drift, canary rollback).")
        return
    st.altair_chart(charts.alerts(alerts), width="stretch")
    shown = alerts.sort_values("raised_at", ascending=False)
    st.dataframe(shown[["raised_at", "kind", "subject", "message", "retrain_run_id"]], hide_index=True)


if __name__ == "__main__":
    render()
