"""The browser suite (marker `browser`, `make browser`): Playwright's Python package drives Debian's Chromium
against the app served on loopback, and every page a walk opens is checked with axe-core (from npm, pinned in
tests/browser/package.json) and for JavaScript errors, and kept as a screenshot under BROWSER_ARTIFACTS
(default artifacts/browser)."""
import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.browser.pages import Browser

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", "artifacts/browser"))
VIEWPORTS = {"desktop": (1280, 800), "phone": (360, 740)}
# Headless, and quiet: without the background-networking flags Chromium tries to reach Google's hosts, which
# this machine's closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) "
                    "or set CHROMIUM to its path")
    if not AXE.exists():
        pytest.fail(f"no axe-core at {AXE}: run `make browser` (it runs npm ci in tests/browser)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app):
    """The test's app served on a free loopback port by a threaded Werkzeug server; returns its base URL,
    which is also the app's PUBLIC_BASE_URL (so links in messages lead back to it)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.port}"
    app.config["PUBLIC_BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield base
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(params=list(VIEWPORTS))
def browser(request, chromium, live_server):
    """A fresh browser context (no cookies) at the parametrised viewport, opening pages of the live server."""
    width, height = VIEWPORTS[request.param]
    context = chromium.new_context(viewport={"width": width, "height": height}, base_url=live_server,
                                   locale="en-US", timezone_id="America/Los_Angeles")
    context.set_default_timeout(15_000)
    out = ARTIFACTS / request.node.name.replace("[", "-").replace("]", "")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    b = Browser(context, base=live_server, axe=AXE.read_text(encoding="utf-8"), out=out, viewport=request.param)
    yield b
    context.close()
    b.assert_clean()
