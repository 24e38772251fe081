"""The dashboard's Altair charts: each takes the frame a transform or repository made and returns a chart.

Why one module: the pages stay a list of "what to show", the look (colours per status and route, time
axes, tooltips) is decided once, and the charts can be built and checked without a browser.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from adfame.repositories.dashboard import SEQUENTIAL_PHASES

HEIGHT = 260
# One colour per meaning across pages: a failure is red wherever it shows.
STATUS_COLORS = alt.Scale(domain=["succeeded", "failed"], range=["#4c9a5b", "#d1495b"])
SPLIT_ORDER = ["train", "val", "test"]
# Snapshot ids are long: level, shortened labels keep the bars their height.
SNAPSHOT_AXIS = alt.Axis(labelAngle=0, labelLimit=160, labelOverlap=True)


def time_format(times: pd.Series) -> str:
    """Labels as fine as the data's span needs: seconds within minutes, a date once it spans days.
    (Vega's own choice labels a span of seconds by milliseconds.)"""
    stamps = pd.to_datetime(times, utc=True)
    span = (stamps.max() - stamps.min()) if len(stamps) else pd.Timedelta(0)
    if span < pd.Timedelta(minutes=10):
        return "%H:%M:%S"
    return "%H:%M" if span < pd.Timedelta(days=2) else "%b %d %H:%M"


def _time(frame: pd.DataFrame, field: str) -> alt.X:
    axis = alt.Axis(format=time_format(frame[field]), title=None, labelAngle=0, labelOverlap=True)
    return alt.X(f"{field}:T", axis=axis)


def snapshot_clips(sizes: pd.DataFrame) -> alt.Chart:
    """Clips per snapshot, oldest left; the tooltip has its bytes, seconds of video and corrupt count."""
    return (
        alt.Chart(sizes, height=HEIGHT, title="Clips per snapshot")
        .mark_bar(color="#4878a8")
        .encode(
            x=alt.X("snapshot_id:N", sort=None, title="snapshot", axis=SNAPSHOT_AXIS),
            y=alt.Y("clips:Q", title="clips"),
            tooltip=["snapshot_id", "created_at:T", "clips", "bytes", "seconds_of_video", "corrupt"],
        )
    )


def split_counts(splits: pd.DataFrame) -> alt.Chart:
    """Each snapshot's clips stacked by split."""
    return (
        alt.Chart(splits, height=HEIGHT, title="Clips per split")
        .mark_bar()
        .encode(
            x=alt.X("snapshot_id:N", sort=None, title="snapshot", axis=SNAPSHOT_AXIS),
            y=alt.Y("clips:Q", stack=True, title="clips"),
            color=alt.Color("split:N", sort=SPLIT_ORDER, scale=alt.Scale(domain=SPLIT_ORDER)),
            order=alt.Order("split_rank:Q"),
            tooltip=["snapshot_id", "split", "clips"],
        )
        .transform_calculate(split_rank="indexof(['train', 'val', 'test'], datum.split)")
    )


def corrupt_share(sizes: pd.DataFrame) -> alt.Chart:
    """The share of extracted clips that failed to decode, per snapshot."""
    return (
        alt.Chart(sizes, height=HEIGHT, title="Corrupt share of extracted clips")
        .mark_bar(color="#d1495b")
        .encode(
            x=alt.X("snapshot_id:N", sort=None, title="snapshot", axis=SNAPSHOT_AXIS),
            y=alt.Y("corrupt_share:Q", axis=alt.Axis(format="%"), title="corrupt"),
            tooltip=["snapshot_id", "corrupt", alt.Tooltip("corrupt_share:Q", format=".2%")],
        )
    )


def tag_frequencies(tags: pd.DataFrame, top: int = 25) -> alt.Chart:
    """The most frequent tags of a snapshot, coloured by category."""
    shown = tags.nlargest(top, "clips")
    return (
        alt.Chart(shown, height=max(HEIGHT, 16 * len(shown)), title=f"Tag frequencies (top {top})")
        .mark_bar()
        .encode(
            y=alt.Y("tag:N", sort="-x", title=None),
            x=alt.X("clips:Q", title="clips"),
            color=alt.Color("category:N"),
            tooltip=["tag", "category", "clips"],
        )
    )


def category_distribution(categories: pd.DataFrame) -> alt.Chart:
    """Tagged clips per category, as a ring."""
    return (
        alt.Chart(categories, height=HEIGHT, title="Category distribution")
        .mark_arc(innerRadius=60)
        .encode(
            theta=alt.Theta("clips:Q"),
            color=alt.Color("category:N"),
            tooltip=["category", "clips", alt.Tooltip("share:Q", format=".1%")],
        )
    )


def per_minute(frame: pd.DataFrame, value: str, title: str) -> alt.Chart:
    """A count per minute as an area (the minutes without any included as 0)."""
    return (
        alt.Chart(frame, height=HEIGHT, title=title)
        .mark_area(line=True, opacity=0.4, interpolate="step-after")
        .encode(
            x=_time(frame, "minute"), y=alt.Y(f"{value}:Q", title="per minute"), tooltip=["minute:T", value]
        )
    )


def outcomes(frame: pd.DataFrame) -> alt.Chart:
    """Finished generations per minute, stacked by status (failures in red)."""
    return (
        alt.Chart(frame, height=HEIGHT, title="Generations per minute")
        .mark_bar()
        .encode(
            x=_time(frame, "minute"),
            y=alt.Y("sum(requests):Q", title="requests"),
            color=alt.Color("status:N", scale=STATUS_COLORS),
            tooltip=["minute:T", "status", "route", "requests"],
        )
    )


def latency(frame: pd.DataFrame) -> alt.Chart:
    """p50, p95 and p99 of the end-to-end seconds per minute, one line each."""
    return (
        alt.Chart(frame, height=HEIGHT, title="Latency percentiles (submitted to finished)")
        .mark_line(point=True)
        .encode(
            x=_time(frame, "minute"),
            y=alt.Y("seconds:Q", title="seconds"),
            color=alt.Color("percentile:N", sort=["p50", "p95", "p99"]),
            tooltip=["minute:T", "percentile", alt.Tooltip("seconds:Q", format=".2f")],
        )
    )


def stage_seconds(frame: pd.DataFrame) -> alt.Chart:
    """Where a request's time goes: the mean seconds of each timed phase, stacked per route."""
    return (
        alt.Chart(frame, height=HEIGHT, title="Mean seconds per phase")
        .mark_bar()
        .encode(
            y=alt.Y("route:N", title=None),
            x=alt.X("mean_s:Q", stack=True, title="seconds"),
            color=alt.Color("stage:N", sort=list(SEQUENTIAL_PHASES)),
            order=alt.Order("phase_rank:Q"),
            tooltip=["route", "stage", alt.Tooltip("mean_s:Q", format=".3f"), "requests"],
        )
        .transform_calculate(phase_rank=f"indexof({list(SEQUENTIAL_PHASES)}, datum.stage)")
    )


def _chance_ticks(frame: pd.DataFrame, category: str, horizontal: bool) -> alt.Chart:
    """A black tick per category at the rate a marketer ignoring the videos would give it."""
    encoding = (
        {"y": alt.Y(f"{category}:N", sort="-x"), "x": alt.X("chance:Q")}
        if horizontal
        else {"x": alt.X(f"{category}:O"), "y": alt.Y("chance:Q")}
    )
    return alt.Chart(frame).mark_tick(color="black", thickness=2).encode(**encoding, tooltip=["chance"])


def position_picks(rates: pd.DataFrame) -> alt.LayerChart:
    """The pick rate of each candidate position, with the chance rate as a tick."""
    bars = (
        alt.Chart(rates, height=HEIGHT, title="Pick rate by position (tick: chance)")
        .mark_bar(color="#4878a8")
        .encode(
            x=alt.X("candidate_index:O", title="position (0: first shown)"),
            y=alt.Y("pick_rate:Q", axis=alt.Axis(format="%"), title="picked when shown"),
            tooltip=["candidate_index", "offered", "picked", alt.Tooltip("pick_rate:Q", format=".1%")],
        )
    )
    return bars + _chance_ticks(rates, "candidate_index", horizontal=False)


def modifier_picks(rates: pd.DataFrame, top: int = 20) -> alt.LayerChart:
    """The shot modifiers marketers pick most often when shown, with the chance rate as a tick."""
    shown = rates.head(top)
    bars = (
        alt.Chart(
            shown, height=max(HEIGHT, 18 * len(shown)), title="Pick rate by shot modifier (tick: chance)"
        )
        .mark_bar()
        .encode(
            y=alt.Y("modifier:N", sort="-x", title=None),
            x=alt.X("pick_rate:Q", axis=alt.Axis(format="%"), title="picked when shown"),
            color=alt.Color("slot:N", title="modifier slot"),
            tooltip=["modifier", "slot", "offered", "picked", alt.Tooltip("pick_rate:Q", format=".1%")],
        )
    )
    return bars + _chance_ticks(shown, "modifier", horizontal=True)


def weight_history(events: pd.DataFrame) -> alt.LayerChart:
    """Each version's traffic weight over time as steps, a point per rollout action with who and why."""
    base = alt.Chart(events, height=HEIGHT, title="Canary traffic weight").encode(
        x=_time(events, "at"),
        y=alt.Y("weight:Q", scale=alt.Scale(domain=[0, 100]), title="% of traffic"),
        color=alt.Color("model_version:N", title="version"),
    )
    steps = base.mark_line(interpolate="step-after")
    points = base.mark_point(filled=True, size=70).encode(
        shape=alt.Shape("state:N"),
        tooltip=["at:T", "model_version", "alias", "weight", "state", "reason", "actor"],
    )
    return steps + points.transform_filter("!datum.carried")


def evaluation(frame: pd.DataFrame, title: str = "Evaluation: champion vs challenger") -> alt.FacetChart:
    """Champion and challenger side by side per metric; each metric on its own scale."""
    return (
        alt.Chart(frame, width=90, height=160)
        .mark_bar()
        .encode(
            x=alt.X("role:N", sort=["champion", "challenger"], title=None),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("role:N", sort=["champion", "challenger"]),
            tooltip=["metric", "role", alt.Tooltip("value:Q", format=".4f")],
        )
        .facet(facet=alt.Facet("metric:N", title=None), columns=4)
        .resolve_scale(y="independent")
        .properties(title=title)
    )


def quality(frame: pd.DataFrame) -> alt.FacetChart:
    """Sampled production quality per model version: each scored request a dot, the minute's mean a line;
    one panel per metric, each on its own scale."""
    base = alt.Chart(width=260, height=160).encode(
        x=_time(frame, "recorded_at"), color=alt.Color("model_version:N", title="version")
    )
    dots = base.mark_circle(opacity=0.6, size=40).encode(
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=["name", "model_version", "recorded_at:T", alt.Tooltip("value:Q", format=".4f")],
    )
    means = (
        base.mark_line(point=True)
        .encode(
            x=alt.X("minute:T", axis=alt.Axis(format=time_format(frame["recorded_at"]), title=None)),
            y=alt.Y("mean(value):Q", title=None),
        )
        .transform_timeunit(minute="yearmonthdatehoursminutes(recorded_at)")
    )
    return (
        alt.layer(dots, means, data=frame)
        .facet(facet=alt.Facet("name:N", title=None), columns=2)
        .resolve_scale(y="independent")
        .properties(title="Sampled production quality (dots: requests, line: mean per minute)")
    )


def drift_score(reports: pd.DataFrame) -> alt.LayerChart:
    """The drift statistic (MMD^2) per window with its threshold (the permutation test's critical value,
    dashed); drifted windows in red."""
    base = alt.Chart(reports, height=HEIGHT, title="Prompt drift").encode(x=_time(reports, "window_end"))
    score = base.mark_line(color="#4878a8").encode(y=alt.Y("score:Q", title="statistic"))
    threshold = base.mark_line(color="#d1495b", strokeDash=[6, 4]).encode(y="threshold:Q")
    points = base.mark_point(filled=True, size=60).encode(
        y="score:Q",
        color=alt.Color("drifted:N", scale=alt.Scale(domain=[False, True], range=["#4878a8", "#d1495b"])),
        tooltip=[
            "window_end:T",
            "score",
            "threshold",
            "drifted",
            "p_value",
            "alpha",
            "n_live",
            "n_reference",
        ],
    )
    return score + threshold + points


def cluster_shares(frame: pd.DataFrame) -> alt.Chart:
    """The share of each prompt cluster per drift window, stacked to 100 %."""
    return (
        alt.Chart(frame, height=HEIGHT, title="Prompt clusters over time")
        .mark_area()
        .encode(
            x=_time(frame, "window_end"),
            y=alt.Y("share:Q", stack="normalize", axis=alt.Axis(format="%"), title="share of prompts"),
            color=alt.Color("cluster:N", title="cluster"),
            tooltip=["window_end:T", "cluster", alt.Tooltip("share:Q", format=".1%")],
        )
    )


def alerts(frame: pd.DataFrame) -> alt.Chart:
    """Each recorded alert as a mark on its kind's row, at the time it was raised."""
    return (
        alt.Chart(frame, height=60 * frame["kind"].nunique() + 40, title="Alerts")
        .mark_point(filled=True, size=90, shape="triangle-up", opacity=0.8)
        .encode(
            x=_time(frame, "raised_at"),
            y=alt.Y("kind:N", title=None),
            color=alt.Color("kind:N", legend=None),
            tooltip=["raised_at:T", "kind", "subject", "message"],
        )
    )
