"""Request rate per tenant (429 with Retry-After) and request body size (413), on the served API.

The app is served with small limits through the settings (``ADFAME_API_RATE_LIMIT_*``,
``ADFAME_API_MAX_BODY_BYTES``), so the limits are reached in a few calls; the defaults are checked to be
on and sensible for the simulated traffic the demo sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from api_support import served
from security_support import INTRUDER, OWNER, detail, finished_job
from sqlalchemy import Engine

from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.api import create_app

pytestmark = pytest.mark.integration

PER_MINUTE, BURST, MAX_BODY = 6, 3, 2048


@pytest.fixture(scope="module")
def limited_url(settings: Settings, engine: Engine) -> Iterator[str]:
    """The API with a burst of 3 requests and 6 a minute per tenant, and bodies of at most 2 KiB."""
    limits = {"api_rate_limit_per_minute": PER_MINUTE, "api_rate_limit_burst": BURST,
              "api_max_body_bytes": MAX_BODY}  # fmt: skip
    with served(create_app(settings.model_copy(update=limits), engine=engine)) as url:
        yield url


def test_defaults_limit_every_tenant_and_leave_room_for_normal_traffic() -> None:
    defaults = Settings(_env_file=None)
    # `adfame simulate` polls each job twice a second with 4 in flight: 8 requests a second.
    assert defaults.api_rate_limit_per_minute >= 8 * 60 and defaults.api_rate_limit_burst >= 8
    assert defaults.api_rate_limit_per_minute <= 6000, "a limit too high limits nothing"
    # The largest valid body (1000 four-byte characters, escaped in JSON) fits, a megabyte does not.
    assert 1000 * 12 + 1024 <= defaults.api_max_body_bytes < 2**20
    assert defaults.api_presign_ttl_s <= 24 * 3600


def test_a_tenant_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(
    limited_url: str, tenant_keys: dict[str, str], engine: Engine, store: ObjectStore
) -> None:
    job = finished_job(engine, store, OWNER)
    owner = httpx.Client(base_url=limited_url, headers={"X-API-Key": tenant_keys[OWNER]}, timeout=30)
    intruder = httpx.Client(base_url=limited_url, headers={"X-API-Key": tenant_keys[INTRUDER]}, timeout=30)
    with owner, intruder:
        codes = [owner.get(f"/jobs/{job}").status_code for _ in range(BURST + 2)]
        assert codes[:BURST] == [200] * BURST and codes[BURST:] == [429, 429], codes
        refused = owner.get(f"/jobs/{job}")
        assert refused.status_code == 429
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60 // PER_MINUTE + 1, retry_after
        assert OWNER in detail(refused) and f"{PER_MINUTE} requests a minute" in detail(refused)
        # Every tenant route counts; the other tenant has its own bucket.
        assert owner.post("/generate-video", json={"prompt": "a green kite"}).status_code == 429
        assert intruder.get(f"/jobs/{uuid.uuid4()}").status_code == 404


def test_an_oversized_body_is_413_before_it_is_read(limited_url: str, tenant_keys: dict[str, str]) -> None:
    headers = {"X-API-Key": tenant_keys[INTRUDER], "Content-Type": "application/json"}
    big = b'{"prompt": "' + b"a" * (MAX_BODY + 10) + b'"}'
    declared = httpx.post(f"{limited_url}/generate-video", content=big, headers=headers, timeout=30)
    assert declared.status_code == 413
    assert f"the limit is {MAX_BODY} bytes" in detail(declared)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is streamed in chunks
        yield b'{"prompt": "'
        for _ in range(8):
            yield b"b" * 512
        yield b'"}'

    streamed = httpx.post(f"{limited_url}/generate-video", content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413 and "streamed" in detail(streamed)
    # Without a key the body is refused just the same: the size check comes before anything else.
    anonymous = httpx.post(f"{limited_url}/webhooks/mlflow", content=big, timeout=30)
    assert anonymous.status_code == 413
