"""The built book in a real browser, with every request off this machine blocked.

Headless Chromium (Debian's `chromium` package, or the browser named by $CHROMIUM) opens
every page of _build/html, served on loopback. A page fails on a console error, a
failed or blocked request, an equation MathJax did not render, a widget the widget
manager did not render, or an image without alt text or whose alt text is a file name
(myst-nb's default for a figure output without `mystnb.image.alt`). Search must find a
known word. The Chinese edition (zh/) goes through the same checks.
Screenshots of a few pages are kept in _build/screenshots/.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
SCREENSHOT_PAGES = ("book/index", "book/02-core-concepts", "notebooks/02a-tensors-and-autodiff")
FILE_NAME = re.compile(r"_images/|\.(png|jpe?g|gif|svg)$", re.IGNORECASE)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Return the Chromium executable, or fail saying how to get one."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "The browser checks need headless Chromium. On Debian or Ubuntu run "
            "`sudo apt-get install chromium`; elsewhere set CHROMIUM=/path/to/chrome."
        )
    return path


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Keep the test output free of one line per request."""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """Serve _build/html on a free loopback port; yield its base URL."""
    if not (HTML / "index.html").exists():
        pytest.fail("no built book in _build/html: run `make strict-book` first")
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def book_pages() -> list[str]:
    """Return each page of the book as a path relative to _build/html, without .html.

    Without a built book this returns one placeholder, whose test then fails saying so.
    """
    top_level_skip = {"search", "genindex", "index"}  # index.html redirects to book/index
    pages = []
    for path in HTML.rglob("*.html"):
        relative = path.relative_to(HTML)
        if any(part.startswith("_") for part in relative.parts):  # _static, _sources
            continue
        if relative.parts[:-1] in ((), ("zh",)) and path.stem in top_level_skip:
            continue
        pages.append(relative.with_suffix("").as_posix())
    return sorted(pages) or ["(no built book)"]


class PageVisit:
    """Open one page with all off-machine requests blocked; collect what went wrong."""

    def __init__(self, browser, site: str) -> None:
        self.problems: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 1600})
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on(
            "requestfailed",
            lambda request: self.problems.append(
                f"request failed: {request.url} ({request.failure})"
            ),
        )
        self.site = site

    def _only_loopback(self, route) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.problems.append(f"blocked request off this machine: {route.request.url}")
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def open(self, path: str) -> None:
        self.page.goto(f"{self.site}/{path}", wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("path", book_pages())
def test_page_renders_offline(browser, site, path: str):
    visit = PageVisit(browser, site)
    try:
        visit.open(f"{path}.html")
        page = visit.page
        if page.locator(".math").count():
            page.wait_for_function("window.MathJax?.startup?.promise !== undefined")
            page.evaluate("MathJax.startup.promise")
            raw = page.locator(".math:not(:has(mjx-container))").count()
            if raw:
                visit.problems.append(f"{raw} equations left as raw TeX")
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if views:
            page.wait_for_selector(".jupyter-widgets", timeout=10_000)
            rendered = page.locator(".cell_output .jupyter-widgets.widget-container").count()
            rendered += page.locator(".cell_output .jupyter-widgets.widget-inline-hbox").count()
            if rendered < views:
                visit.problems.append(f"{views} widgets in the page, {rendered} rendered")
        for image in page.locator("img").all():
            alt = (image.get_attribute("alt") or "").strip()
            source = (image.get_attribute("src") or "")[:80]
            if not alt:
                visit.problems.append(f"image without alt text: {source}")
            elif FILE_NAME.search(alt):
                visit.problems.append(f"image whose alt text is a file name: {alt[:80]}")
        if path in SCREENSHOT_PAGES:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{path.replace('/', '--')}.png"), full_page=True)
    finally:
        visit.close()
    assert not visit.problems, f"{path}.html:\n" + "\n".join(visit.problems)


@pytest.mark.parametrize("search", ["search.html?q=gradient", "zh/search.html?q=张量"])
def test_search_finds_a_known_word(browser, site, search: str):
    visit = PageVisit(browser, site)
    try:
        visit.open(search)
        results = visit.page.locator("#search-results li")
        results.first.wait_for(timeout=15_000)
        assert results.count() > 0
    finally:
        visit.close()
    assert not visit.problems, "\n".join(visit.problems)
