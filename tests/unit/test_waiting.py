"""adfame.waiting: the one poll-until-deadline helper every wait in AdFame uses."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from adfame.waiting import WaitTimeout, wait_for, wait_for_async


def test_returns_the_first_answer_that_is_done() -> None:
    answers = itertools.count()
    assert (
        wait_for(lambda: next(answers), what="three", timeout_s=5, interval_s=0.01, done=lambda n: n >= 3)
        == 3
    )


def test_a_timeout_names_what_was_awaited_and_the_last_answer() -> None:
    with pytest.raises(
        WaitTimeout, match=r"the run finished: not reached within 0.1s \(last seen: queued\)"
    ) as info:
        wait_for(
            lambda: "queued", what="the run finished", timeout_s=0.1, interval_s=0.02, done=lambda s: s == "x"
        )
    assert info.value.last == "queued"


def test_errors_named_retry_on_mean_not_yet_and_become_the_cause() -> None:
    def unreachable() -> None:
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeout) as info:
        wait_for(unreachable, what="up", timeout_s=0.1, interval_s=0.02, retry_on=(ConnectionError,))
    assert isinstance(info.value.__cause__, ConnectionError)


def test_other_errors_end_the_wait_at_once() -> None:
    calls = itertools.count()

    def died() -> None:
        next(calls)
        raise RuntimeError("exited while starting")

    with pytest.raises(RuntimeError, match="exited while starting"):
        wait_for(died, what="healthy", timeout_s=5, interval_s=0.01, retry_on=(ConnectionError,))
    assert next(calls) == 1


def test_the_async_form_waits_the_same_way() -> None:
    answers = iter([None, None, "done"])

    async def ask() -> str | None:
        return next(answers)

    assert asyncio.run(wait_for_async(ask, what="done", timeout_s=5, interval_s=0.01)) == "done"
