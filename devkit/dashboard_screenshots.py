"""Full-page screenshots of a running dashboard's pages in headless Chromium (Debian's ``chromium``).

Why: the acceptance of the dashboard is that people can read its plots, which only a rendered page
shows; the docs reference the PNGs this writes (docs/dashboard.md). Streamlit scrolls its main area
inside the window, so each page is measured once drawn and the window resized to its whole height
before the shot. The PNGs are reduced to a 256-colour palette to stay small in the repository.

    python -m devkit.dashboard_screenshots --url http://127.0.0.1:8501 --out docs/screenshots
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# Each page of dashboard/app.py by name and its address (the default page is served at the root).
PAGES = {"offline": "", "online": "online", "models": "models", "drift": "drift"}
WIDTH = 1280
# The page's whole height: Streamlit scrolls an inner element, so the tallest scroll height of any.
FULL_HEIGHT = "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
COUNTS = """() => ({
  title: !!document.querySelector('[data-testid="stMain"] h1'),
  running: !!document.querySelector('[data-testid="stStatusWidget"]'),
  containers: document.querySelectorAll('[data-testid="stVegaLiteChart"]').length,
  charts: [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
    .filter(c => c.querySelector('canvas, svg')).length,
  errors: [...document.querySelectorAll('[data-testid="stAlertContentError"], [data-testid="stException"]')]
    .map(e => e.innerText),
})"""


@dataclass(frozen=True)
class RenderedPage:
    """One page as Chromium drew it: its charts, the errors it shows, its screenshot (when asked for)."""

    name: str
    charts: int
    errors: list[str]
    screenshot: Path | None


def render_pages(url: str, folder: Path | None = None, timeout_s: float = 60) -> list[RenderedPage]:
    """Open every page, wait until it is drawn, count its charts and errors; with ``folder``, save each as
    ``dashboard-<page>.png`` there, full height."""
    from playwright.sync_api import sync_playwright

    rendered = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            for name, path in PAGES.items():
                page.goto(f"{url.rstrip('/')}/{path}", wait_until="networkidle")
                counts = _settled(page, timeout_s)
                shot = _screenshot(page, folder / f"dashboard-{name}.png") if folder else None
                rendered.append(RenderedPage(name, counts["charts"], counts["errors"], shot))
        finally:
            browser.close()
    return rendered


def _settled(page, timeout_s: float) -> dict:  # page: playwright.sync_api.Page
    """The page's counts once it is drawn: its title is there, Streamlit is not running, every chart has
    its canvas, and two looks a second apart agree (charts arrive one by one as the script runs)."""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        counts = page.evaluate(COUNTS)
        drawn = counts["title"] and not counts["running"] and counts["containers"] == counts["charts"]
        if drawn and counts == last:
            return counts
        last = counts if drawn else None
        page.wait_for_timeout(1000)
    raise TimeoutError(f"the page at {page.url} was not drawn within {timeout_s:.0f}s (last seen: {last})")


def _screenshot(page, path: Path) -> Path:  # page: playwright.sync_api.Page
    """The whole page: the window is made as tall as Streamlit's scrolling main area first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": WIDTH, "height": int(page.evaluate(FULL_HEIGHT)) + 40})
    page.wait_for_timeout(1500)  # charts lay themselves out again for the new size
    _save_small(page.screenshot(full_page=True), path)
    page.set_viewport_size({"width": WIDTH, "height": 900})
    return path


def _save_small(png: bytes, path: Path) -> None:
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256).save(path, optimize=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the running dashboard, e.g. http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    args = parser.parse_args(argv)
    for page in render_pages(args.url, args.out):
        size = page.screenshot.stat().st_size // 1024 if page.screenshot else 0
        print(
            f"{page.name}: {page.charts} charts, {len(page.errors)} errors -> {page.screenshot} ({size} KiB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
