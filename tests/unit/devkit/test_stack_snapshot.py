"""devkit.stack_snapshot: what changed between two snapshots of a stack, leaf by leaf."""

from __future__ import annotations

from devkit.stack_snapshot import differences


def test_equal_snapshots_have_no_differences() -> None:
    snapshot = {"tables": {"selections": 3}, "services": {"worker": {"pid": 41, "state": "healthy"}}}
    assert differences(snapshot, dict(snapshot)) == []


def test_every_changed_added_or_removed_leaf_is_named_with_its_path() -> None:
    before = {"tables": {"selections": 3, "candidates": 10}, "dags": {"nightly_etl": {"paused": False}}}
    after = {"tables": {"selections": 4, "api_keys": 1}, "dags": {"nightly_etl": {"paused": True}}}
    assert differences(before, after) == [
        "dags.nightly_etl.paused: False -> True",
        "tables.api_keys: None -> 1",
        "tables.candidates: 10 -> None",
        "tables.selections: 3 -> 4",
    ]
