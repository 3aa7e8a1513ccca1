"""The browser harness (the practitioner's pages, the overview): headless Debian Chromium driven
by Playwright, and a live server.

* ``chromium``: a Playwright ``Browser`` on ``/usr/bin/chromium`` (the Debian package the
  Makefile installs; nothing is downloaded at run time). Tests using it skip, saying why, when
  that binary is missing.
* ``live_server``: the test ``app`` served over real HTTP on 127.0.0.1 and a free port (a
  threaded werkzeug server in a thread); ``BASE_URL`` points at it, so every link the service
  hands out opens in the browser. Yields the base URL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        thread.join(timeout=10)
