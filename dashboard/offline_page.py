"""Offline: the curated datasets ``nightly_etl`` published (sizes, splits, corrupt share, tags, categories).

A page script: ``app.py`` runs it through ``st.navigation``. Everything shown is counted from
``dataset_snapshots``, ``dataset_clips`` and ``etl_runs`` (``adfame.repositories.dashboard``).
"""

from __future__ import annotations

import streamlit as st

from adfame.repositories import dashboard as sql
from dashboard import charts, sources, transforms

NO_SNAPSHOT = (
    "No curated snapshot yet: `nightly_etl` publishes one per night (`adfame etl demo` runs it once on the "
    "generated mirror). Its sizes, splits, corrupt share and tags appear here."
)


def render() -> None:
    """The page: snapshot sizes over time, then the latest (or a chosen) snapshot's tags and categories."""
    st.title("Offline: curated datasets")
    sizes = sources.from_database("snapshot sizes", sql.snapshot_sizes)
    if sizes is None:
        return
    if sizes.empty:
        st.info(NO_SNAPSHOT)
        return
    latest = sizes.iloc[-1]
    cards = st.columns(4)
    cards[0].metric("Snapshots", len(sizes))
    cards[1].metric("Clips in the latest", int(latest["clips"]))
    cards[2].metric("Video in the latest", f"{latest['seconds_of_video'] / 60:.1f} min")
    cards[3].metric("Corrupt share (latest)", f"{latest['corrupt_share']:.1%}")
    left, right = st.columns(2)
    left.altair_chart(charts.snapshot_clips(sizes), width="stretch")
    splits = sources.from_database("split counts", sql.split_counts)
    if splits is not None:
        right.altair_chart(charts.split_counts(splits), width="stretch")
    st.altair_chart(charts.corrupt_share(sizes), width="stretch")
    _render_tags(sizes)
    _render_runs()


def _render_tags(sizes) -> None:
    """The tag frequencies and the category distribution of one snapshot (the latest by default)."""
    ids = list(sizes["snapshot_id"])[::-1]
    snapshot_id = st.selectbox("Snapshot", ids, index=0, help="whose tags and categories are shown")
    tags = sources.from_database("tag frequencies", sql.tag_counts, snapshot_id)
    if tags is None:
        return
    if tags.empty:
        st.info(
            f"The clips of snapshot {snapshot_id} carry no tags (the curation tags brand, activity, setting)."
        )
        return
    left, right = st.columns([3, 2])
    left.altair_chart(charts.tag_frequencies(tags), width="stretch")
    right.altair_chart(charts.category_distribution(transforms.category_distribution(tags)), width="stretch")


def _render_runs() -> None:
    runs = sources.from_database("ETL runs", sql.etl_runs)
    if runs is not None and not runs.empty:
        st.subheader("ETL runs")
        st.dataframe(runs, hide_index=True, width="stretch")


if __name__ == "__main__":
    render()
