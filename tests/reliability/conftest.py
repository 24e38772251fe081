"""The fault tests run on the suite's own stack, like the integration tests.

``suite_stack`` and ``settings`` (tests/conftest.py, one instance per session) are shared with
tests/integration. ``fault_rig`` is the module's one rig: a database of its own, an API and two real
workers, shared by every fault so that the module starts processes once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adfame.settings import Settings
from devkit.faults.rig import FaultRig, RigOptions


@pytest.fixture(scope="session", autouse=True)
def _on_the_suite_stack(suite_stack: None) -> None:
    """Every fault test runs on the suite's stack (``suite_stack`` in tests/conftest.py: one per session)."""


@pytest.fixture(scope="module")
def fault_rig(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    """Two workers (one CPU thread each) and an API over a database of the run's own; one candidate per
    request, milestones triggering the probe DAG every second while Airflow refuses."""
    with FaultRig(
        settings, tmp_path_factory.mktemp("faults"), RigOptions(workers=2, num_candidates=1)
    ) as rig:
        yield rig
