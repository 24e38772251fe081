"""The fault tests run on the suite's own stack, like the integration tests: its fixtures are reused here.

``suite_stack`` (session, autouse: the stack up and healthy, stopped at the end only if this session started
it) and ``settings`` come from tests/integration/conftest.py, loaded by path (tests/ is not a package), so
both directories share one definition.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


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
