"""The dashboard's arithmetic on what the repositories return: pure functions of DataFrames, no Streamlit.

Why apart from the pages: a chart is only as right as the numbers behind it, and these are testable
without a browser or a database (tests/unit/dashboard/). The database does the counting
(``adfame.repositories.dashboard``); what is left here is reshaping for a chart and the few rates that
need rows from several tables at once (which position and which shot modifier marketers pick).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

# A variation prompt is the request's prompt, then this separator and the shot modifiers joined by it
# (inference/variations.py, ``shot_styles``); the "identical" strategy shows the prompt alone.
MODIFIER_SEPARATOR = ", "


def latest_snapshot(sizes: pd.DataFrame) -> str | None:
    """The id of the newest snapshot in ``snapshot_sizes``' frame (ordered oldest first); None when empty."""
    return None if sizes.empty else str(sizes["snapshot_id"].iloc[-1])


def category_distribution(tags: pd.DataFrame) -> pd.DataFrame:
    """Tagged clips per tag category (``brand``, ``activity``, ``setting``), largest first, with its share
    of all category tags."""
    if tags.empty:
        return pd.DataFrame(columns=["category", "clips", "share"])
    totals = tags.groupby("category", as_index=False)["clips"].sum().sort_values("clips", ascending=False)
    totals["share"] = totals["clips"] / totals["clips"].sum()
    return totals.reset_index(drop=True)


def fill_minutes(frame: pd.DataFrame, value: str, start: datetime, end: datetime) -> pd.DataFrame:
    """A per-minute count with the minutes that had none put back as 0, from ``start`` to ``end``.

    A rate chart that skips quiet minutes draws a straight line across them, which reads as traffic.
    """
    minutes = pd.date_range(pd.Timestamp(start).floor("min"), pd.Timestamp(end).floor("min"), freq="min")
    counts = frame.set_index(pd.to_datetime(frame["minute"], utc=True))[value] if not frame.empty else None
    filled = pd.Series(0, index=minutes.tz_convert("UTC") if minutes.tz else minutes.tz_localize("UTC"))
    if counts is not None:
        filled = counts.reindex(filled.index, fill_value=0).astype(int)
    return pd.DataFrame({"minute": filled.index, value: filled.to_numpy()})


def latency_long(latency: pd.DataFrame) -> pd.DataFrame:
    """``latency_per_minute``'s p50/p95/p99 columns as rows (minute, percentile, seconds): a line each."""
    if latency.empty:
        return pd.DataFrame(columns=["minute", "percentile", "seconds"])
    long = latency.melt(
        id_vars=["minute"], value_vars=["p50", "p95", "p99"], var_name="percentile", value_name="seconds"
    )
    return long.sort_values(["percentile", "minute"]).reset_index(drop=True)


def position_pick_rates(offers: pd.DataFrame) -> pd.DataFrame:
    """Per candidate position: how often it was shown, picked, its pick rate, and the rate a marketer who
    ignored the videos would give it (one over the candidates of each request it was shown in)."""
    if offers.empty:
        return pd.DataFrame(columns=["candidate_index", "offered", "picked", "pick_rate", "chance"])
    shown = offers.groupby("request_id")["candidate_index"].transform("size")
    frame = offers.assign(chance=1.0 / shown, picked=offers["picked"].astype(bool))
    rates = frame.groupby("candidate_index", as_index=False).agg(
        offered=("picked", "size"), picked=("picked", "sum"), chance=("chance", "mean")
    )
    rates["picked"] = rates["picked"].astype(int)
    rates["pick_rate"] = rates["picked"] / rates["offered"]
    return rates[["candidate_index", "offered", "picked", "pick_rate", "chance"]]


def shot_modifiers(prompt: str, variation_prompt: str) -> list[str]:
    """The shot modifiers a variation added to its request's prompt, in the order the strategy joined them."""
    head = prompt + MODIFIER_SEPARATOR
    if not variation_prompt.startswith(head):
        return []
    return [part.strip() for part in variation_prompt[len(head) :].split(MODIFIER_SEPARATOR) if part.strip()]


def modifier_pick_rates(offers: pd.DataFrame, min_offered: int = 1) -> pd.DataFrame:
    """Per shot modifier ("golden hour light"): how often a candidate carrying it was shown and picked, its
    pick rate and the chance rate; ``slot`` is its place in the variation (1: the first modifier).

    Modifiers shown fewer than ``min_offered`` times are left out: one lucky pick is not a taste.
    """
    columns = ["slot", "modifier", "offered", "picked", "pick_rate", "chance"]
    if offers.empty:
        return pd.DataFrame(columns=columns)
    shown = offers.groupby("request_id")["candidate_index"].transform("size")
    rows = [
        {"slot": slot, "modifier": modifier, "picked": bool(row.picked), "chance": 1.0 / count}
        for row, count in zip(offers.itertuples(index=False), shown, strict=True)
        for slot, modifier in enumerate(shot_modifiers(row.prompt, row.variation_prompt), start=1)
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    rates = (
        pd.DataFrame(rows)
        .groupby(["slot", "modifier"], as_index=False)
        .agg(offered=("picked", "size"), picked=("picked", "sum"), chance=("chance", "mean"))
    )
    rates = rates[rates["offered"] >= min_offered].copy()
    rates["picked"] = rates["picked"].astype(int)
    rates["pick_rate"] = rates["picked"] / rates["offered"]
    return rates.sort_values(["pick_rate", "offered"], ascending=False)[columns].reset_index(drop=True)


def weight_history(history: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """A rollout history (at, model_version, weight, ...) with each version's last weight carried to
    ``now`` (rows marked ``carried``), so a step chart shows how long the current weight has held."""
    if history.empty:
        return history.assign(carried=pd.Series(dtype=bool))
    last = history.sort_values("at").groupby("model_version", as_index=False).tail(1)
    carried = last.assign(at=pd.Timestamp(now), carried=True)
    frame = pd.concat([history.assign(carried=False), carried], ignore_index=True)
    return frame.sort_values(["model_version", "at"]).reset_index(drop=True)


# The evaluation's spreads across demographic variants (training/evaluation.py, ``fairness_metrics``).
FAIRNESS_PREFIX = "fairness_"


def evaluation_comparison(evaluations: pd.DataFrame, version: str, fairness: bool = False) -> pd.DataFrame:
    """One version's evaluation as rows (metric, role, value) of its measured metrics, for a grouped bar
    per metric: the quality and preference metrics, or with ``fairness`` the spreads across demographic
    variants. Skipped metrics (value NULL, with a reason) are left out here and listed by the page."""
    measured = evaluations[(evaluations["model_version"] == version) & evaluations["value"].notna()]
    chosen = measured[measured["metric"].str.startswith(FAIRNESS_PREFIX) == fairness]
    return chosen[["metric", "role", "value"]].sort_values(["metric", "role"]).reset_index(drop=True)


def records(rows: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    """Dataclass rows (a repository's result) as a DataFrame with fixed columns, empty included."""
    return pd.DataFrame([asdict(row) for row in rows], columns=list(columns))


# What a drift report's details hold beside its score (monitoring/drift.py): the permutation test's p-value
# and level, and the sizes of the two samples.
DRIFT_DETAILS = ("p_value", "alpha", "n_live", "n_reference")


def drift_frame(reports: pd.DataFrame) -> pd.DataFrame:
    """Drift reports (window_end, score, threshold, drifted, details) with the details' p-value, level and
    sample sizes as columns, for the chart's tooltip."""
    frame = reports.copy()
    for key in DRIFT_DETAILS:
        frame[key] = [(details or {}).get(key) for details in frame["details"]]
    return frame


def cluster_shares(reports: pd.DataFrame) -> pd.DataFrame:
    """Each drift window's prompt clusters (``details["clusters"]``: ``{"name", "share", ...}``, largest
    first) as rows (window_end, cluster, share), clusters of one name summed, for an area over time."""
    rows = [
        {"window_end": row.window_end, "cluster": cluster["name"], "share": float(cluster["share"])}
        for row in reports.itertuples(index=False)
        for cluster in (row.details or {}).get("clusters", [])
    ]
    frame = pd.DataFrame(rows, columns=["window_end", "cluster", "share"])
    return frame.groupby(["window_end", "cluster"], as_index=False)["share"].sum()


def since(now: datetime, window: timedelta | None) -> datetime:
    """The start of the shown time window; the epoch for "everything"."""
    return now - window if window is not None else datetime(1970, 1, 1, tzinfo=now.tzinfo)
