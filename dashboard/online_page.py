"""Online: serving as it happens: prompt arrivals, generations and errors, latency, and what marketers pick.

A page script: ``app.py`` runs it through ``st.navigation``. Counted from ``generation_requests``,
``candidates`` and ``selections`` over the sidebar's time window (``adfame.repositories.dashboard``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from adfame.repositories import dashboard as sql
from dashboard import charts, sources, transforms

NO_TRAFFIC = (
    "No prompt arrived in this window. Prompts come from the REST API, the selection page, "
    "`adfame generate` or `adfame simulate`; widen the time window in the sidebar to see older traffic."
)
NO_PICKS = (
    "No marketer picked a candidate in this window yet (the selection page, or `adfame simulate --select`)."
)


def render() -> None:
    """The page: arrivals and generations per minute, latency percentiles, errors, then the picks."""
    st.title("Online: serving")
    now = datetime.now(UTC)
    start = sources.window_start(now)
    arrivals = sources.from_database("prompt arrivals", sql.arrivals_per_minute, start)
    if arrivals is None:
        return
    if arrivals.empty:
        st.info(NO_TRAFFIC)
    else:
        first = max(start, arrivals["minute"].min().to_pydatetime())
        filled = transforms.fill_minutes(arrivals, "requests", first, now)
        left, right = st.columns(2)
        left.altair_chart(
            charts.per_minute(filled, "requests", "Prompt arrivals per minute"), width="stretch"
        )
        outcomes = sources.from_database("generations", sql.outcomes_per_minute, start)
        if outcomes is not None and not outcomes.empty:
            right.altair_chart(charts.outcomes(outcomes), width="stretch")
        _render_latency(start)
        _render_errors(start)
    _render_picks(start)


def _render_latency(start: datetime) -> None:
    latency = sources.from_database("latency", sql.latency_per_minute, start)
    stages = sources.from_database("phase timings", sql.stage_seconds, start)
    if latency is None or latency.empty:
        st.info("No request finished successfully in this window, so there is no latency to show.")
        return
    left, right = st.columns([3, 2])
    left.altair_chart(charts.latency(transforms.latency_long(latency)), width="stretch")
    if stages is not None and not stages.empty:
        right.altair_chart(charts.stage_seconds(stages), width="stretch")


def _render_errors(start: datetime) -> None:
    errors = sources.from_database("errors", sql.recent_errors, start)
    if errors is None:
        return
    if errors.empty:
        st.success("No failed request in this window.")
        return
    st.subheader(f"Latest errors ({len(errors)})")
    st.dataframe(errors, hide_index=True, width="stretch")


def _render_picks(start: datetime) -> None:
    """Which position and which shot modifier marketers pick, against picking blind."""
    st.subheader("What marketers pick")
    offers = sources.from_database("selections", sql.selection_offers, start)
    if offers is None:
        return
    if offers.empty:
        st.info(NO_PICKS)
        return
    requests = offers["request_id"].nunique()
    st.caption(f"{requests} picks; a tick marks the rate a marketer picking blind would give.")
    left, right = st.columns(2)
    left.altair_chart(charts.position_picks(transforms.position_pick_rates(offers)), width="stretch")
    modifiers = transforms.modifier_pick_rates(offers)
    if modifiers.empty:
        right.info("These candidates carry no shot modifiers (variation strategy `identical`).")
    else:
        right.altair_chart(charts.modifier_picks(modifiers), width="stretch")


if __name__ == "__main__":
    render()
