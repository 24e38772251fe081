"""The errors a ``nightly_etl`` run's own input causes: its data or its conf. Retrying cannot help.

Airflow retries a failed task, which is the cure for a source that did not answer or a server that
was down; it is no cure for a caption the database cannot hold or a gate that failed, which would only
fail again, later. Every error of this family (``EtlInputError``) is failed at once by
``operators.etl_step.EtlStepOperator``, and says what was wrong: which conf value, which clip and
column, which check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class EtlInputError(RuntimeError):
    """The run's data or conf is wrong; the message names what. Not retried."""


class BadRunConf(EtlInputError):
    """The DAG run's conf is not a valid run configuration (a bad snapshot id, an unknown field)."""


class GateFailed(EtlInputError):
    """The curated data did not pass the quality gate; nothing was loaded."""


@dataclass(frozen=True)
class ClipProblem:
    """One value of one clip that cannot be published, and why."""

    clip: str
    column: str
    reason: str

    def __str__(self) -> str:
        return f"clip {self.clip!r}, column {self.column}: {self.reason}"


class UnpublishableClips(EtlInputError):
    """Clips hold values the snapshot's tables or manifest cannot take; found before anything was
    written. ``problems`` lists each clip, column and reason."""

    def __init__(self, snapshot_id: str, problems: Sequence[ClipProblem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(str(problem) for problem in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(
            f"snapshot {snapshot_id}: {len(self.problems)} values cannot be published, nothing was "
            f"written: {shown}{more}"
        )
