"""The selection page in headless Chromium (Debian's package, driven by Playwright).

A marketer's session: open the page, enter the key, submit a prompt, watch the candidates arrive
(the test does the worker's part with real mp4s), click "Pick this one"; the pick must be in
PostgreSQL and the page must confirm it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from api_support import complete_when_submitted
from sqlalchemy import Engine, text

from adfame.contracts import VIDEOS_BUCKET
from adfame.settings import Settings
from adfame.storage import ObjectStore
from inference.auth import create_api_key

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Route

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TENANT = "pagetest"
PICK = 2


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_a_marketer_picks_a_candidate_and_the_pick_is_stored(
    browser: Browser, engine: Engine, settings: Settings, api_url: str
) -> None:
    store = ObjectStore(settings)
    store.ensure_bucket(VIDEOS_BUCKET)
    key = create_api_key(engine, TENANT)
    prompt = f"a woman running in sneakers on a beach {uuid.uuid4().hex[:6]}"

    page = browser.new_page()
    try:
        page.goto(api_url + "/")
        page.get_by_label("API key").fill(key)
        page.get_by_label("Prompt").fill(prompt)
        worker = complete_when_submitted(engine, store, prompt, TENANT, timeout_s=30)
        page.get_by_role("button", name="Generate candidates").click()
        worker.join()

        pick_buttons = page.get_by_role("button", name="Pick candidate")
        pick_buttons.nth(4).wait_for(timeout=20_000)
        assert pick_buttons.count() == 5
        videos = page.locator("video")
        assert videos.count() == 5
        assert videos.first.evaluate("v => v.autoplay && v.muted && v.loop && v.controls")
        # The browser itself loads a presigned mp4 from the object store.
        page.wait_for_function("document.querySelector('video').readyState >= 1", timeout=20_000)

        page.get_by_role("button", name=f"Pick candidate {PICK + 1}").click()
        confirmation = page.locator("#confirmation")
        confirmation.wait_for(state="visible", timeout=10_000)
        assert f"Candidate {PICK + 1}" in confirmation.inner_text()
        assert page.locator("#error").is_hidden()
        assert page.evaluate("localStorage.getItem('adfame.apiKey')") == key
    finally:
        page.close()

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT candidate_index, tenant FROM selections")).all()
    assert [tuple(row) for row in rows] == [(PICK, TENANT)]


def test_the_page_shows_the_apis_reason_for_a_bad_key(browser: Browser, api_url: str) -> None:
    page = browser.new_page()
    try:
        page.goto(api_url + "/")
        page.get_by_label("API key").fill("not-a-key")
        page.get_by_label("Prompt").fill("a sunset over the ocean")
        page.get_by_role("button", name="Generate candidates").click()
        error = page.get_by_role("alert")
        error.wait_for(state="visible", timeout=10_000)
        assert "unknown or revoked API key" in error.inner_text()
    finally:
        page.close()


def test_swagger_ui_renders_offline(browser: Browser, api_url: str) -> None:
    """/docs in the browser with every request beyond the API refused: the operations still render."""
    page = browser.new_page()
    refused: list[str] = []

    def only_the_api(route: Route) -> None:
        if route.request.url.startswith(api_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    try:
        page.route("**/*", only_the_api)
        page.goto(api_url + "/docs")
        paths = page.locator(".opblock-summary-path")
        paths.first.wait_for(timeout=20_000)
        assert "/generate-video" in paths.all_inner_texts()
        assert refused == []
    finally:
        page.close()
