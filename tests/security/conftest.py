"""The security tests run on the suite's own real stack, through the integration suite's fixtures.

Why not copies: the stack (``suite_stack`` in tests/conftest.py, one per session) is shared, and the
per-module databases must behave exactly as the integration suite's, so tests/integration/conftest.py
is loaded here under a name of its own and its module fixtures are re-used; its helpers
(``api_support``) are importable the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from sqlalchemy import Engine

from adfame.contracts import VIDEOS_BUCKET
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.auth import create_api_key

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))

from security_support import TENANTS  # noqa: E402 - it imports api_support, on sys.path from here on


def _load_integration_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("integration_conftest", INTEGRATION / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_integration = _load_integration_conftest()
new_database = _integration.new_database
engine = _integration.engine
api_url = _integration.api_url


@pytest.fixture(scope="session", autouse=True)
def _on_the_suite_stack(suite_stack: None) -> None:
    """Every security test runs on the suite's stack (``suite_stack`` in tests/conftest.py)."""


@pytest.fixture(scope="module")
def store(settings: Settings) -> ObjectStore:
    """The stack's object store, with the videos bucket."""
    store = ObjectStore(settings)
    store.ensure_bucket(VIDEOS_BUCKET)
    return store


@pytest.fixture(scope="module")
def tenant_keys(engine: Engine) -> dict[str, str]:
    """A live API key for each of the two tenants of these tests, in this module's database."""
    return {tenant: create_api_key(engine, tenant) for tenant in TENANTS}


@pytest.fixture(scope="module")
def clients(api_url: str, tenant_keys: dict[str, str]) -> Iterator[dict[str, httpx.Client]]:
    """An HTTP client of the served API per tenant, each sending its own key."""
    made = {
        tenant: httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=30)
        for tenant, key in tenant_keys.items()
    }
    yield made
    for client in made.values():
        client.close()
