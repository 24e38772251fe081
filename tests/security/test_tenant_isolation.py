"""No tenant reaches another tenant's jobs or videos: not through any route of the API, not by guessing
job ids, object keys or presigned URLs; and presigned URLs expire at the real object store.

The routes are enumerated from the app itself, so a route added later fails
``test_every_route_is_classified`` until it is given an access class here and is covered below.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from api_support import served
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from security_support import INTRUDER, OWNER, detail, finished_job
from sqlalchemy import Engine, text
from starlette.routing import Mount, Route

from adfame.contracts import VIDEOS_BUCKET, video_object_key
from adfame.settings import Settings
from adfame.storage import ObjectStore
from adfame.waiting import wait_for
from inference.api import create_app
from inference.api_services import require_tenant

pytestmark = pytest.mark.integration

# Every route of the API and who may call it: "tenant" routes need a key and act on the key's tenant
# only; "public" ones serve no tenant's data; "signed" ones check a signature of their own.
ROUTE_ACCESS = {
    ("POST", "/generate-video"): "tenant",
    ("GET", "/jobs/{job_id}"): "tenant",
    ("POST", "/jobs/{job_id}/selection"): "tenant",
    ("POST", "/webhooks/mlflow"): "signed",
    ("GET", "/healthz"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/static"): "public",
    ("GET", "/static-offline-docs"): "public",
}


def _routes(app: FastAPI) -> dict[tuple[str, str], Route | Mount]:
    found: dict[tuple[str, str], Route | Mount] = {}
    for route in app.routes:
        if isinstance(route, Mount):
            found[("GET", route.path)] = route
        elif isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                found[(method, route.path)] = route
    return found


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


@pytest.fixture(scope="module")
def owner_job(engine: Engine, store: ObjectStore) -> uuid.UUID:
    return finished_job(engine, store, OWNER)


def test_every_route_is_classified(settings: Settings, engine: Engine) -> None:
    routes = _routes(create_app(settings, engine=engine))
    assert set(routes) == set(ROUTE_ACCESS), (
        f"routes without an access class: {sorted(set(routes) - set(ROUTE_ACCESS))}; "
        f"classified but gone: {sorted(set(ROUTE_ACCESS) - set(routes))}"
    )
    for key, route in routes.items():
        needs_key = isinstance(route, APIRoute) and require_tenant in set(_calls(route.dependant))
        assert needs_key == (ROUTE_ACCESS[key] == "tenant"), f"{key}: requires a tenant key: {needs_key}"


def test_tenant_routes_refuse_calls_without_a_key(api_url: str, owner_job: uuid.UUID) -> None:
    calls = {
        ("POST", "/generate-video"): {"prompt": "a red car at night"},
        ("GET", "/jobs/{job_id}"): None,
        ("POST", "/jobs/{job_id}/selection"): {"candidate_index": 0},
    }
    assert set(calls) == {key for key, access in ROUTE_ACCESS.items() if access == "tenant"}
    for (method, path), body in calls.items():
        url = api_url + path.format(job_id=owner_job)
        response = httpx.request(method, url, json=body, timeout=30)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"


def test_another_tenants_job_looks_exactly_like_a_job_that_does_not_exist(
    clients: dict[str, httpx.Client], owner_job: uuid.UUID
) -> None:
    intruder = clients[INTRUDER]
    guessed = uuid.uuid4()
    for job in (owner_job, guessed):
        response = intruder.get(f"/jobs/{job}")
        # Same status, same words: the answer tells nothing about whether the id exists.
        assert (response.status_code, detail(response)) == (404, f"job {job} not found")
    # Other spellings of the same id reach the same row, and are refused the same way.
    for spelling in (str(owner_job).upper(), owner_job.hex, f"urn:uuid:{owner_job}"):
        response = intruder.get(f"/jobs/{spelling}")
        assert response.status_code in (404, 422), spelling
        assert str(owner_job) not in response.text or response.status_code == 404
    assert clients[OWNER].get(f"/jobs/{owner_job}").status_code == 200


def test_another_tenants_job_cannot_be_selected(
    clients: dict[str, httpx.Client], engine: Engine, owner_job: uuid.UUID
) -> None:
    response = clients[INTRUDER].post(f"/jobs/{owner_job}/selection", json={"candidate_index": 0})
    assert (response.status_code, detail(response)) == (404, f"job {owner_job} not found")
    with engine.connect() as conn:
        picks = conn.execute(
            text("SELECT count(*) FROM selections WHERE request_id = :id"), {"id": owner_job}
        ).scalar_one()
    assert picks == 0


def test_a_job_cannot_be_submitted_for_another_tenant(
    clients: dict[str, httpx.Client], engine: Engine
) -> None:
    prompt = f"a bicycle in the rain {uuid.uuid4().hex[:6]}"
    refused = clients[INTRUDER].post("/generate-video", json={"prompt": prompt, "tenant": OWNER})
    assert refused.status_code == 422 and "tenant" in detail(refused)
    accepted = clients[INTRUDER].post("/generate-video", json={"prompt": prompt})
    assert accepted.status_code == 202, accepted.text
    with engine.connect() as conn:
        tenants = (
            conn.execute(text("SELECT tenant FROM generation_requests WHERE prompt = :p"), {"p": prompt})
            .scalars()
            .all()
        )
    assert tenants == [INTRUDER], "the key decides the tenant, never the body"


def test_public_routes_serve_no_tenants_data(
    api_url: str, clients: dict[str, httpx.Client], owner_job: uuid.UUID
) -> None:
    owner_view = clients[OWNER].get(f"/jobs/{owner_job}").json()
    secrets = [str(owner_job), owner_view["prompt"], video_object_key(OWNER, str(owner_job), 0)]
    public = [path for (method, path), access in ROUTE_ACCESS.items() if access == "public"]
    for path in public:
        response = httpx.get(api_url + path, timeout=30)
        assert response.status_code in (200, 307, 404), path  # the static folders list nothing
        assert not any(secret in response.text for secret in secrets), path
    for traversal in ("/static/../api.py", "/static/%2e%2e/api.py", "/static/..%2fauth.py"):
        response = httpx.get(api_url + traversal, timeout=30)
        assert response.status_code == 404 and "create_app" not in response.text, traversal
    unsigned = httpx.post(api_url + "/webhooks/mlflow", json={"entity": "model_version_alias"}, timeout=30)
    assert unsigned.status_code == 401


# ---- object keys and presigned URLs ------------------------------------------------------------------


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_object_keys_and_presigned_urls_cannot_be_guessed_or_bent(
    clients: dict[str, httpx.Client], engine: Engine, store: ObjectStore, owner_job: uuid.UUID
) -> None:
    intruder_job = finished_job(engine, store, INTRUDER)
    own_url = clients[INTRUDER].get(f"/jobs/{intruder_job}").json()["candidates"][0]["video_url"]
    assert httpx.get(own_url, timeout=30).status_code == 200, "the intruder's own URL works"
    owner_key = video_object_key(OWNER, str(owner_job), 0)
    owner_path = f"/{VIDEOS_BUCKET}/{owner_key}"
    attempts = {
        # The intruder's signature on the owner's object key: the signature covers the path.
        "signature moved to another key": _with_path(own_url, owner_path),
        # The owner's object without any signature, and the bucket listed anonymously.
        "unsigned object": _with_path(own_url.split("?")[0], owner_path),
        "anonymous listing": _with_path(own_url.split("?")[0], f"/{VIDEOS_BUCKET}/") + f"?prefix={OWNER}/",
        # A longer life than was signed.
        "expiry extended": _with_query(own_url, **{"X-Amz-Expires": "604800"}),
    }
    for what, url in attempts.items():
        response = httpx.get(url, timeout=30)
        assert response.status_code == 403, f"{what}: {response.status_code} {response.text[:200]}"
        assert b"ftyp" not in response.content[:16], what


def test_presigned_urls_expire_at_the_object_store(
    settings: Settings, engine: Engine, store: ObjectStore, tenant_keys: dict[str, str]
) -> None:
    short = settings.model_copy(update={"api_presign_ttl_s": 2})
    job = finished_job(engine, store, OWNER)
    with served(create_app(short, engine=engine)) as url:
        view = httpx.get(f"{url}/jobs/{job}", headers={"X-API-Key": tenant_keys[OWNER]}, timeout=30).json()
    video_url = view["candidates"][0]["video_url"]
    assert dict(parse_qsl(urlsplit(video_url).query))["X-Amz-Expires"] == "2"

    def refused() -> httpx.Response | None:
        response = httpx.get(video_url, timeout=30)
        return response if response.status_code != 200 else None

    expired = wait_for(refused, what="the presigned URL refused after its 2 s", timeout_s=30, interval_s=0.5)
    assert expired.status_code == 403 and b"ftyp" not in expired.content[:16]
    assert "expired" in expired.text.lower(), expired.text[:300]
    # The same object under a live signature downloads: it was the expiry that refused the URL.
    candidate_key = video_object_key(OWNER, str(job), 0)
    assert httpx.get(store.presign_get(VIDEOS_BUCKET, candidate_key), timeout=30).status_code == 200
