"""How the benchmarks print: one labelled figure per line, and a heartbeat while a long step runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

HEARTBEAT_S = 15.0
LABEL_WIDTH = 48


def say(text: str = "") -> None:
    print(text, flush=True)


def figure(label: str, value: str) -> None:
    say(f"  {label:<{LABEL_WIDTH}} {value}")


@contextmanager
def progress(label: str, detail: Callable[[], str] | None = None) -> Iterator[None]:
    """Print a line every ``HEARTBEAT_S`` while a long step runs, so a slow run is visibly alive."""
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            extra = ""
            if detail is not None:
                try:
                    extra = detail()
                except Exception:  # progress is best effort; it must never break the measurement
                    extra = ""
            say(f"    ... {label}: {time.monotonic() - started:.0f} s{f' ({extra})' if extra else ''}")

    thread = threading.Thread(target=beat, daemon=True)
    say(f"  > {label}")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        say(f"  < {label}: {time.monotonic() - started:.1f} s")
