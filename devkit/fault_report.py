"""What one injected fault did to the work in flight: the row of ``python -m bench.faults``'s table.

Every fault scenario (tests/reliability/ asserts on it, bench/faults.py prints it) returns one
``FaultReport``, so the test and the benchmark read the same ledger the same way: ``lost`` and
``duplicated`` come from the tables and the bucket (what was accepted against what exists), never from
the traffic generator's own counters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class FaultReport:
    """The outcome of one fault: ``lost`` and ``duplicated`` must be zero for the platform to pass.

    ``in_flight`` counts the units of work (requests, selections, training runs: ``unit`` says which)
    accepted but not finished when the fault was injected; ``recovery_s`` is the time from the end of
    the fault (the service back, the process restarted) to the first unit finished after it.
    """

    fault: str
    unit: str
    accepted: int
    in_flight: int
    lost: int
    duplicated: int
    recovery_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """Nothing accepted was lost and nothing was done twice."""
        return self.lost == 0 and self.duplicated == 0

    def as_row(self) -> dict[str, Any]:
        """A flat row for a table or JSON (``details`` kept as a nested mapping)."""
        return asdict(self)
