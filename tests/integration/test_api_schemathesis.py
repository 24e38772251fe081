"""Property-based requests from the API's own OpenAPI spec (schemathesis): none may get a 5xx.

Each generated case is sent twice, without a key and with a valid one, so both the 401 path and the
real handlers (validation, database, Kafka, object store) see the generated input.
"""

from __future__ import annotations

import pytest
import schemathesis
from api_support import complete_request, insert_request
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import Engine

from inference.api import create_app
from inference.auth import create_api_key

pytestmark = pytest.mark.integration

TENANT = "fuzz"
MAX_WAIT_S = 0.2  # generated `wait` requests must not hold the run for minutes


@pytest.fixture(scope="module")
def api_key(engine: Engine) -> str:
    # A finished job with candidates, so selections can reach the database's rules too.
    complete_request(engine, None, insert_request(engine, TENANT), TENANT)
    return create_api_key(engine, TENANT)


# The spec is read from an app that connects to nothing; the cases go to the served app (`api_url`).
# (Loaded eagerly: schemathesis' lazy `from_fixture` does not work with pytest 9.)
schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, api_url: str, api_key: str
) -> None:
    if isinstance(case.body, dict) and case.body.get("wait") is True:
        case.body["wait_timeout_s"] = MAX_WAIT_S
    case.call_and_validate(base_url=api_url, checks=[not_a_server_error])
    case.call_and_validate(base_url=api_url, headers={"X-API-Key": api_key}, checks=[not_a_server_error])
