"""Each chart of dashboard/charts.py builds a valid Vega-Lite spec that carries its rows (no browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboard import charts

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def rows_in(spec: dict) -> int:
    """How many data rows a chart's spec embeds (Altair puts them in ``datasets``)."""
    return sum(len(values) for values in spec.get("datasets", {}).values())


def test_every_chart_carries_its_data() -> None:
    sizes = pd.DataFrame(
        {"snapshot_id": ["s1", "s2"], "created_at": [T0, T0 + timedelta(days=1)], "clips": [10, 12]}
        | {
            "bytes": [100, 120],
            "seconds_of_video": [20.0, 24.0],
            "corrupt": [1, 0],
            "corrupt_share": [0.09, 0.0],
        }
    )
    splits = pd.DataFrame({"snapshot_id": ["s1", "s1"], "split": ["train", "val"], "clips": [7, 3]})
    tags = pd.DataFrame({"tag": ["brand:nike"], "category": ["brand"], "value": ["nike"], "clips": [4]})
    minute = pd.DataFrame({"minute": [T0, T0 + timedelta(minutes=1)], "requests": [2, 0]})
    outcomes = pd.DataFrame({"minute": [T0], "status": ["failed"], "route": ["none"], "requests": [1]})
    latency = pd.DataFrame({"minute": [T0], "percentile": ["p95"], "seconds": [1.5]})
    events = pd.DataFrame(
        {"at": [T0], "model_version": ["2"], "alias": ["challenger"], "weight": [5], "state": ["canary"]}
        | {"reason": ["start"], "actor": ["cli"], "carried": [False]}
    )
    reports = pd.DataFrame(
        {"window_end": [T0], "score": [0.02], "threshold": [0.01], "drifted": [True], "p_value": [0.001]}
        | {"alpha": [0.01], "n_live": [30], "n_reference": [300]}
    )
    built = [
        (charts.snapshot_clips(sizes), 2),
        (charts.split_counts(splits), 2),
        (charts.corrupt_share(sizes), 2),
        (charts.tag_frequencies(tags), 1),
        (charts.per_minute(minute, "requests", "Arrivals"), 2),
        (charts.outcomes(outcomes), 1),
        (charts.latency(latency), 1),
        (charts.weight_history(events), 1),
        (charts.drift_score(reports), 1),
    ]
    for chart, rows in built:
        spec = chart.to_dict()  # validates against the Vega-Lite schema
        assert rows_in(spec) == rows, spec.get("title")


def test_pick_charts_layer_the_chance_tick_over_the_bars() -> None:
    rates = pd.DataFrame(
        {"candidate_index": [0, 1], "offered": [4, 4], "picked": [3, 1], "pick_rate": [0.75, 0.25]}
        | {"chance": [0.5, 0.5]}
    )
    spec = charts.position_picks(rates).to_dict()
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "tick"]
    modifiers = pd.DataFrame(
        {"slot": [1], "modifier": ["golden hour light"], "offered": [3], "picked": [3], "pick_rate": [1.0]}
        | {"chance": [0.5]}
    )
    assert [layer["mark"]["type"] for layer in charts.modifier_picks(modifiers).to_dict()["layer"]] == [
        "bar",
        "tick",
    ]
