"""The API's request bodies, error format and static surface; no service is needed for these."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from adfame.schemas import MAX_PROMPT_CHARS
from inference.api import create_app
from inference.api_schemas import GenerateVideoBody


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No lifespan: nothing connects to PostgreSQL, Kafka or Airflow.
    return TestClient(create_app())


def test_the_mission_example_becomes_a_prompt_request() -> None:
    body = GenerateVideoBody(
        prompt="A sunset over the ocean in the style of a watercolor painting", num_frames=16, fps=8
    )
    request = body.to_prompt_request("nike")
    assert (request.tenant, request.num_frames, request.fps, request.num_candidates) == ("nike", 16, 8, 5)
    assert request.duration_s == 2.0


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": ""},
        {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
        {"prompt": 42},
        {"prompt": ["a", "list"]},
        {"prompt": "\ud800 lone surrogate"},
        {"prompt": "ok prompt", "num_frames": 0},
        {"prompt": "ok prompt", "num_frames": 1000},
        {"prompt": "ok prompt", "fps": 0},
        {"prompt": "ok prompt", "fps": 61},
        {"prompt": "ok prompt", "height": 17},
        {"prompt": "ok prompt", "unknown": 1},
        {"prompt": "ok prompt", "wait_timeout_s": 0},
    ],
)
def test_the_body_rejects_what_a_worker_could_not_honour(fields: dict) -> None:
    with pytest.raises(ValidationError):
        GenerateVideoBody(**fields)


def test_prompt_request_rules_apply_beyond_the_body_schema() -> None:
    body = GenerateVideoBody(prompt="  a  ")  # three characters, but only one visible
    with pytest.raises(ValidationError, match="visible"):
        body.to_prompt_request("nike")


def test_a_missing_key_is_a_401_with_a_reason(client: TestClient) -> None:
    response = client.post("/generate-video", json={"prompt": "a sunset over the sea"})
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_malformed_json_is_a_422_with_a_readable_detail(client: TestClient) -> None:
    response = client.post(
        "/generate-video", content=b'{"prompt": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("malformed JSON body")
    assert body["errors"][0]["type"] == "json_invalid"


def test_openapi_documents_the_endpoints_and_both_key_headers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/generate-video", "/jobs/{job_id}", "/jobs/{job_id}/selection", "/healthz", "/metrics"} <= set(
        spec["paths"]
    )
    schemes = spec["components"]["securitySchemes"]
    assert {s.get("scheme", s.get("name")) for s in schemes.values()} == {"bearer", "X-API-Key"}
    body = spec["components"]["schemas"]["GenerateVideoBody"]["properties"]
    assert body["num_frames"]["maximum"] == 129 and body["prompt"]["maxLength"] == MAX_PROMPT_CHARS


def test_docs_pages_load_their_assets_from_the_api_itself(client: TestClient) -> None:
    """Swagger UI and ReDoc must work where no CDN is reachable (an air-gapped deployment, CI)."""
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assert assets and not [a for a in assets if a.startswith(("http://", "https://", "//"))]
        for asset in assets:
            assert client.get(asset).status_code == 200, asset


def test_the_selection_page_and_its_script_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<label for="api-key">' in page.text and "/static/app.js" in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "Pick this one" in script.text


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/jobs/00000000-0000-0000-0000-000000000000")  # 401: no key
    text = client.get("/metrics").text
    assert 'adfame_api_requests_total{method="GET",route="/jobs/{job_id}",status="401"}' in text
    assert "adfame_api_request_duration_seconds_bucket" in text


def test_unknown_paths_are_json_404s(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.json()["detail"]
