"""One way to wait: ask until the answer is good or a deadline passes.

Every wait in AdFame (a service becoming healthy, a DAG run finishing, a job completing, an object
store accepting writes) is the same loop: ask, sleep, give up after a while with an error that says
what was awaited and what was last seen. tenacity runs the loop; this module fixes its shape, so a
caller says only what it waits for, how long, and which errors mean "not yet".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypedDict, TypeVar, Unpack

from tenacity import (
    AsyncRetrying,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A wait gave up. ``last`` is the last answer (or the last "not yet" error) it saw."""

    def __init__(self, what: str, timeout_s: float, last: Any = None) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        seen = f" (last seen: {last})" if last is not None else ""
        super().__init__(f"{what}: not reached within {timeout_s:g}s{seen}")


class WaitOptions(TypedDict, total=False):
    """How to ask: seconds between questions (0.5), what counts as done (a truthy answer), and which
    exceptions mean "not yet" (none: any other error ends the wait at once)."""

    interval_s: float
    done: Callable[[Any], bool]
    retry_on: tuple[type[BaseException], ...]


def _policy(timeout_s: float, options: WaitOptions) -> dict[str, Any]:
    done = options.get("done", bool)
    return {
        "stop": stop_after_delay(timeout_s),
        "wait": wait_fixed(options.get("interval_s", 0.5)),
        "retry": retry_if_result(lambda answer: not done(answer))
        | retry_if_exception_type(options.get("retry_on", ())),
    }


def _timeout(error: RetryError, what: str, timeout_s: float) -> WaitTimeout:
    attempt = error.last_attempt
    return WaitTimeout(what, timeout_s, attempt.exception() if attempt.failed else attempt.result())


def wait_for(check: Callable[[], T], *, what: str, timeout_s: float, **options: Unpack[WaitOptions]) -> T:
    """Call ``check`` until ``done(answer)`` holds, and return that answer.

    An exception of a type in ``retry_on`` counts as "not yet"; any other one ends the wait at once
    (a process that died while starting is an answer, not a reason to keep asking). Raises
    ``WaitTimeout`` naming ``what`` when ``timeout_s`` has passed.
    """
    try:
        return Retrying(**_policy(timeout_s, options))(check)
    except RetryError as error:
        timeout = _timeout(error, what, timeout_s)
        raise timeout from timeout.last if isinstance(timeout.last, BaseException) else None


async def wait_for_async(
    check: Callable[[], Awaitable[T]], *, what: str, timeout_s: float, **options: Unpack[WaitOptions]
) -> T:
    """``wait_for`` for coroutines: sleeps with asyncio, so a server waits without holding a thread."""
    try:
        return await AsyncRetrying(**_policy(timeout_s, options))(check)
    except RetryError as error:
        timeout = _timeout(error, what, timeout_s)
        raise timeout from timeout.last if isinstance(timeout.last, BaseException) else None
