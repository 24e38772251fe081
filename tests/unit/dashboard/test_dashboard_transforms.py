"""The dashboard's arithmetic (dashboard/transforms.py) on small frames shaped like repository results."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard import transforms
from inference.variations import expand

NOW = datetime(2026, 1, 5, 12, 30, 20, tzinfo=UTC)


def offers_of(
    picks: dict[str, int], prompts: dict[str, list[str]], base: str = "red sneakers"
) -> pd.DataFrame:
    """``selection_offers``' frame: every candidate of each picked request, and whether it won."""
    rows = [
        {
            "request_id": request_id,
            "prompt": base,
            "candidate_index": index,
            "variation_prompt": variation,
            "picked": index == picks[request_id],
        }
        for request_id, variations in prompts.items()
        for index, variation in enumerate(variations)
    ]
    return pd.DataFrame(rows)


def test_minutes_without_traffic_are_filled_with_zero() -> None:
    counts = pd.DataFrame(
        {"minute": [pd.Timestamp("2026-01-05 12:27", tz="UTC"), pd.Timestamp("2026-01-05 12:29", tz="UTC")]}
        | {"requests": [3, 5]}
    )
    filled = transforms.fill_minutes(counts, "requests", NOW - timedelta(minutes=4), NOW)
    assert list(filled["requests"]) == [0, 3, 0, 5, 0]
    assert filled["minute"].iloc[0] == pd.Timestamp("2026-01-05 12:26", tz="UTC")


def test_no_traffic_is_a_row_of_zeros() -> None:
    empty = pd.DataFrame(columns=["minute", "requests"])
    filled = transforms.fill_minutes(empty, "requests", NOW - timedelta(minutes=2), NOW)
    assert list(filled["requests"]) == [0, 0, 0]


def test_latency_percentiles_become_one_line_each() -> None:
    latency = pd.DataFrame({"minute": [1, 2], "requests": [4, 2], "p50": [1.0, 2.0], "p95": [3.0, 4.0]})
    latency["p99"] = [5.0, 6.0]
    long = transforms.latency_long(latency)
    assert sorted(set(long["percentile"])) == ["p50", "p95", "p99"]
    assert long[long["percentile"] == "p95"]["seconds"].tolist() == [3.0, 4.0]
    assert transforms.latency_long(latency.iloc[0:0]).empty


def test_position_pick_rates_against_chance() -> None:
    prompts = {rid: [f"red sneakers, v{i}" for i in range(4)] for rid in ("a", "b", "c", "d")}
    rates = transforms.position_pick_rates(offers_of({"a": 0, "b": 0, "c": 0, "d": 2}, prompts))
    by_position = rates.set_index("candidate_index")
    assert by_position.loc[0, "pick_rate"] == pytest.approx(0.75)
    assert by_position.loc[2, "pick_rate"] == pytest.approx(0.25)
    assert by_position.loc[1, "picked"] == 0
    assert set(by_position["offered"]) == {4}
    assert by_position["chance"].tolist() == pytest.approx([0.25] * 4)
    assert by_position["picked"].sum() == 4  # one pick per request


def test_shot_modifiers_are_read_back_from_the_variation_strategy() -> None:
    """What the dashboard parses is what inference/variations.py writes (the real strategy, not a copy)."""
    request_id = uuid.UUID(int=7)
    variations = expand("red sneakers on a track", 3, request_id, "shot_styles")
    for variation in variations:
        modifiers = transforms.shot_modifiers("red sneakers on a track", variation)
        assert len(modifiers) == 4 and all(modifiers)
        assert variation == "red sneakers on a track, " + ", ".join(modifiers)
    assert transforms.shot_modifiers("a prompt", "a prompt") == []  # the "identical" strategy


def test_modifier_pick_rates_find_the_modifier_marketers_like() -> None:
    prompts = {
        "a": ["red sneakers, golden hour light", "red sneakers, neon night lighting"],
        "b": ["red sneakers, neon night lighting", "red sneakers, golden hour light"],
        "c": ["red sneakers, golden hour light", "red sneakers, soft diffused daylight"],
    }
    rates = transforms.modifier_pick_rates(offers_of({"a": 0, "b": 1, "c": 0}, prompts))
    top = rates.iloc[0]
    assert (top["modifier"], top["offered"], top["picked"], top["pick_rate"]) == (
        "golden hour light",
        3,
        3,
        1.0,
    )
    assert rates.set_index("modifier").loc["neon night lighting", "pick_rate"] == 0.0
    assert set(rates["chance"]) == {0.5}
    assert set(rates["slot"]) == {1}
    assert (
        len(transforms.modifier_pick_rates(offers_of({"a": 0, "b": 1, "c": 0}, prompts), min_offered=3)) == 1
    )


def test_identical_variations_have_no_modifier_rates() -> None:
    offers = offers_of({"a": 1}, {"a": ["red sneakers", "red sneakers"]})
    assert transforms.modifier_pick_rates(offers).empty
    assert transforms.modifier_pick_rates(offers.iloc[0:0]).empty


def test_category_distribution_sums_tags_per_category() -> None:
    tags = pd.DataFrame(
        {
            "tag": ["brand:nike", "brand:adidas", "activity:running", "setting:street"],
            "category": ["brand", "brand", "activity", "setting"],
            "value": ["nike", "adidas", "running", "street"],
            "clips": [5, 3, 4, 8],
        }
    )
    categories = transforms.category_distribution(tags).set_index("category")
    assert categories["clips"].to_dict() == {"brand": 8, "setting": 8, "activity": 4}
    assert categories["share"].sum() == pytest.approx(1.0)
    assert transforms.category_distribution(tags.iloc[0:0]).empty


def test_weight_history_carries_each_versions_last_weight_to_now() -> None:
    start = NOW - timedelta(minutes=10)
    history = pd.DataFrame(
        {
            "model_version": ["3", "3", "3"],
            "weight": [5, 25, 0],
            "state": ["canary", "canary", "rolled_back"],
            "at": [start, start + timedelta(minutes=2), start + timedelta(minutes=4)],
        }
    )
    frame = transforms.weight_history(history, NOW)
    assert frame["weight"].tolist() == [5, 25, 0, 0]
    assert frame["carried"].tolist() == [False, False, False, True]
    assert frame["at"].iloc[-1] == pd.Timestamp(NOW)
    assert transforms.weight_history(history.iloc[0:0], NOW).empty


def test_evaluation_comparison_keeps_measured_metrics_of_one_version() -> None:
    evaluations = pd.DataFrame(
        {
            "model_version": ["2", "2", "2", "2", "1"],
            "role": ["champion", "challenger", "champion", "challenger", "challenger"],
            "metric": ["flicker", "flicker", "clip_score", "clip_score", "flicker"],
            "value": [0.2, 0.1, None, None, 0.5],
        }
    )
    comparison = transforms.evaluation_comparison(evaluations, "2")
    assert comparison.to_dict("records") == [
        {"metric": "flicker", "role": "challenger", "value": 0.1},
        {"metric": "flicker", "role": "champion", "value": 0.2},
    ]


def test_drift_details_become_columns_and_clusters_rows() -> None:
    end = NOW
    reports = pd.DataFrame(
        {
            "window_end": [end - timedelta(minutes=5), end],
            "score": [0.001, 0.05],
            "threshold": [0.01, 0.01],
            "drifted": [False, True],
            "details": [
                {"p_value": 0.4, "n_live": 30, "clusters": [{"name": "red shoes", "share": 1.0}]},
                {
                    "p_value": 0.001,
                    "n_live": 40,
                    "clusters": [
                        {"name": "kitchen blender", "share": 0.5},
                        {"name": "red shoes", "share": 0.3},
                        {"name": "red shoes", "share": 0.2},
                    ],
                },
            ],
        }
    )
    frame = transforms.drift_frame(reports)
    assert frame["p_value"].tolist() == [0.4, 0.001]
    assert frame["n_reference"].isna().all()
    clusters = transforms.cluster_shares(reports)
    latest = clusters[clusters["window_end"] == end].set_index("cluster")["share"].to_dict()
    assert latest == pytest.approx({"kitchen blender": 0.5, "red shoes": 0.5})
    assert transforms.cluster_shares(reports.iloc[0:0]).empty


def test_the_window_starts_back_from_now_or_at_the_epoch() -> None:
    assert transforms.since(NOW, timedelta(hours=1)) == NOW - timedelta(hours=1)
    assert transforms.since(NOW, None).year == 1970
