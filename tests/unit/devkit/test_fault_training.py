"""Fault (g)'s ledger arithmetic: what counts as lost and as done twice (no services; the fault itself
runs on the stack in tests/reliability/test_training_task_killed.py)."""

from __future__ import annotations

from typing import Any

from devkit.fault_training import count_duplicates, count_lost

STEPS = 8


def ledger(**changes: Any) -> dict[str, Any]:
    """A clean milestone: one version from its one finished run, every step once, checkpoints at the end."""
    clean = {
        "versions": ["7"],
        "versions_from_other_runs": 0,
        "training_runs": {"run-a": "FINISHED"},
        "loss_steps_repeated": 0,
        "loss_steps_missing": 0,
        "evaluation_rows_repeated": 0,
        "checkpoint_step": STEPS,
    }
    return clean | changes


def test_a_clean_milestone_lost_nothing_and_did_nothing_twice() -> None:
    assert (count_lost("success", ledger(), STEPS), count_duplicates(ledger())) == (0, 0)


def test_a_second_run_a_second_version_or_a_step_logged_twice_is_a_duplicate() -> None:
    assert count_duplicates(ledger(training_runs={"run-a": "FINISHED", "run-b": "RUNNING"})) == 1
    assert count_duplicates(ledger(versions=["7", "8"], versions_from_other_runs=1)) == 2
    assert count_duplicates(ledger(loss_steps_repeated=3, evaluation_rows_repeated=1)) == 4


def test_a_failed_run_or_an_unfinished_training_is_lost() -> None:
    assert count_lost("failed", ledger(), STEPS) == 1
    assert count_lost("success", ledger(versions=[]), STEPS) == 1
    assert count_lost("success", ledger(training_runs={"run-a": "KILLED"}), STEPS) == 1
    assert count_lost("success", ledger(checkpoint_step=4), STEPS) == 1
    assert count_lost("success", ledger(loss_steps_missing=2), STEPS) == 1
