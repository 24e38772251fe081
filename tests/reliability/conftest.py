"""The fault tests run on the suite's own stack, like the integration tests: its fixtures are reused here.

``suite_stack`` (session, autouse: the stack up and healthy, stopped at the end only if this session started
it) and ``settings`` come from tests/integration/conftest.py, loaded by path (tests/ is not a package), so
both directories share one definition. ``fault_rig`` is the module's one rig: a database of its own, an API
and two real workers, shared by every fault so that the module starts processes once.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adfame.settings import Settings
from devkit.faults.rig import FaultRig, RigOptions


def _integration_fixtures():  # -> the module tests/integration/conftest.py
    path = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("integration_conftest", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_shared = _integration_fixtures()
suite_stack = _shared.suite_stack
settings = _shared.settings


@pytest.fixture(scope="module")
def fault_rig(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    """Two workers (one CPU thread each) and an API over a database of the run's own; one candidate per
    request, milestones triggering the probe DAG every second while Airflow refuses."""
    with FaultRig(
        settings, tmp_path_factory.mktemp("faults"), RigOptions(workers=2, num_candidates=1)
    ) as rig:
        yield rig
