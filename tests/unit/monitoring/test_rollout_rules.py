"""The rollout's checks that need no services: weights, and the table operators read.

The actions themselves change MLflow and PostgreSQL together; tests/integration/test_rollout.py runs
them on the real stack.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adfame.repositories.deployments import DeploymentEvent
from monitoring.rollout import CanaryState, RolloutError, WeightOutOfRange, check_weight, format_state


@pytest.mark.parametrize("weight", [0, 5, 100])
def test_whole_percentages_are_weights(weight: int) -> None:
    assert check_weight(weight) == weight


@pytest.mark.parametrize("weight", [-1, 101, 2.5, True, "50"])
def test_anything_else_is_refused_naming_the_value(weight: object) -> None:
    with pytest.raises(WeightOutOfRange, match=rf"within 0\.\.100, got {weight!r}"):
        check_weight(weight)  # type: ignore[arg-type]
    assert issubclass(WeightOutOfRange, RolloutError)


def test_the_state_reads_as_a_table_with_its_history() -> None:
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    state = CanaryState("adfame-wan-lora", "6", "7", 25, "canary", "window 1 passed", at, "7")
    events = [
        DeploymentEvent(
            3, 2, "adfame-wan-lora", "7", "challenger", 25, "canary", "window 1 passed", "dag", at
        )
    ]
    assert format_state(state, events).splitlines() == [
        "model            adfame-wan-lora",
        "champion         6",
        "challenger       7",
        "canary weight    25 %",
        "last deployment  version 7: canary",
        "reason           window 1 passed",
        "updated          2026-05-01 12:30:00 UTC",
        "",
        "at                   version  alias       weight  state        actor    reason",
        "2026-05-01 12:30:00 7        challenger     25 %  canary       dag      window 1 passed",
    ]
    empty = CanaryState("adfame-wan-lora", None, None, 0, "none", None, None)
    assert "champion         - (the base model serves)" in format_state(empty)
    assert "last deployment  none" in format_state(empty)
