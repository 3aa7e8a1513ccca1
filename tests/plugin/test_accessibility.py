"""Every HTML page the service renders, checked with axe-core in headless Chromium (issue 20).

Each page in :data:`PAGES` is opened over real HTTP (the ``chromium`` session browser, one
module-wide live app with its records made through the real webhook intake and reached through
the signed links), at a desktop width and at 320 px, with JavaScript on (axe needs it; the
pages themselves have none), and axe-core's whole default rule set is run on it. No violation
may be "serious" or "critical"; a failure lists each rule, its impact and the nodes it found.
Lesser ("moderate", "minor") findings are printed, so ``pytest -s`` shows them.

axe-core is the ``axe.min.js`` that the ``axe-playwright-python`` package bundles (a ``dev``
dependency); it is evaluated in the page through Playwright, which the pages' Content-Security-
Policy (no scripts) does not stop, so the pages are checked with the headers they really carry.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from werkzeug.serving import make_server

from tests.conftest import TENANT_SECRETS, write_tenants_file
from tests.plugin.browser import admin_sign_in, upload
from tests.plugin.uploads.journey import complete_answers, filled_pdf, partial_answers

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "admin-token-for-the-axe-test-0123456789"
WIDTHS = {"desktop": (1280, 900), "320px": (320, 640)}
BLOCKING = ("serious", "critical")


class Site:
    """The app behind a real HTTP server, for the whole module, with records made on demand
    (each named record once) through the signed webhook."""

    def __init__(self, root: Path, template: Path) -> None:
        import shutil

        from sharewise.plugin.app import create_app

        data = root / "data"
        data.mkdir()
        shutil.copy(template, data / "sharewise.db")
        self.app = create_app({
            "TESTING": True, "DATA_DIR": str(data),
            "TENANTS": str(write_tenants_file(root / "tenants.toml")),
            "DATABASE_URL": f"sqlite:///{data / 'sharewise.db'}",
            "BROKER_URL": f"sqla+sqlite:///{data / 'broker.db'}",
            "STORAGE_URL": str(data / "files"), "SECRET_KEYS": "test-link-key",
            "LOG_LEVEL": "WARNING", "BASE_URL": "http://sharewise.test",
            "ADMIN_TOKENS": ADMIN_TOKEN})
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.app.config["BASE_URL"] = self.base
        self.thread = threading.Thread(target=self.server.serve_forever, name="axe-live",
                                       daemon=True)
        self.thread.start()
        self.client = self.app.test_client()
        self._records: dict[str, dict[str, Any]] = {}

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)

    def _signed(self, event: dict[str, Any]) -> Any:
        from sharewise.plugin.demo import signed_request

        body, headers = signed_request(TENANT_SECRETS["northshire"], event)
        return self.client.post("/webhooks/northshire", data=body, headers=headers)

    def new_record(self, **overrides: Any) -> dict[str, Any]:
        """A new record (the intake's 201 answer, with its ``request_id``)."""
        from sharewise.plugin.demo import sample_event

        request_id = f"REQ-{uuid.uuid4().hex[:12]}"
        resp = self._signed(sample_event(request_id=request_id, **overrides))
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return {**resp.get_json(), "request_id": request_id}

    def record(self, name: str) -> dict[str, Any]:
        """The record called ``name``, made in its state the first time it is asked for."""
        if name not in self._records:
            self._records[name] = self._make(name)
        return self._records[name]

    def upload(self, made: dict[str, Any], answers: dict[str, Any]) -> None:
        pdf = filled_pdf(self.app, made["record_id"], answers)
        resp = self.client.post(made["upload_url"].removeprefix(self.base), data=pdf,
                                headers={"Content-Type": "application/pdf",
                                         "Accept": "application/json"})
        assert resp.status_code == 200, resp.get_data(as_text=True)

    def _make(self, name: str) -> dict[str, Any]:
        from sqlalchemy import update

        from sharewise.plugin.db import session_scope, utcnow
        from sharewise.plugin.records.models import Record

        if name == "overdue":
            made = self.new_record(case={"reference": "CASE-LATE"}, urgency="urgent")
            with session_scope(self.app) as session:
                session.execute(update(Record).where(Record.public_id == made["record_id"])
                                .values(due_at=utcnow() - timedelta(hours=3)))
            return made
        made = self.new_record()
        if name == "incomplete":
            self.upload(made, partial_answers())
        elif name == "complete":
            self.upload(made, complete_answers())
        elif name == "cancelled":
            resp = self._signed({"type": "share.cancelled", "timestamp": "2026-01-01T00:00:00Z",
                                 "data": {"request_id": made["request_id"]}})
            assert resp.status_code < 300, resp.get_data(as_text=True)
        elif name == "purged":
            self.upload(made, complete_answers())
            with session_scope(self.app) as session:
                session.execute(update(Record).where(Record.public_id == made["record_id"])
                                .values(purged_at=utcnow()))
        return made

    def pdf_file(self, made: dict[str, Any], answers: dict[str, Any], tmp: Path) -> Path:
        path = tmp / f"{made['record_id']}-{len(answers)}.pdf"
        path.write_bytes(filled_pdf(self.app, made["record_id"], answers))
        return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> Iterator[Site]:
    served = Site(tmp_path_factory.mktemp("axe"), _sqlite_template)
    yield served
    served.stop()


# ------------------------------------------------------------------------------ reaching pages
# Each takes the module's site, a Playwright page and a temporary folder, opens the page it is
# named for and returns the HTTP status it answered with.


def _goto(page: Any, url: str) -> int:
    response = page.goto(url)
    assert response is not None
    return response.status


def _upload_on_page(page: Any, made: dict[str, Any], path: Path) -> int:
    """Choose ``path`` with the page's file input and press the page's upload button."""
    _goto(page, made["form_url"])
    response = upload(page, path)
    assert response is not None
    return response.status


def _upload_result(kind: str) -> Callable[[Site, Any, Path], int]:
    def reach(site: Site, page: Any, tmp: Path) -> int:
        if kind == "complete":  # completes a record: a new one each time
            made = site.new_record()
            return _upload_on_page(page, made, site.pdf_file(made, complete_answers(), tmp))
        made = site.record("uploads")
        if kind == "rejected":
            path = tmp / "not-a-pdf.pdf"
            path.write_bytes(b"this is not a PDF")
            return _upload_on_page(page, made, path)
        return _upload_on_page(page, made, site.pdf_file(made, partial_answers(), tmp))
    return reach


def _online_form(site: Site, page: Any, tmp: Path) -> int:
    return _goto(page, site.record("awaiting")["form_url"] + "/online")


def _online_form_submitted(site: Site, page: Any, tmp: Path) -> int:
    """The online form submitted as the prefill left it: the problems summary on top."""
    _goto(page, site.record("online")["form_url"] + "/online")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Submit the decision record").click()
    return nav.value.status


def _record_page(name: str) -> Callable[[Site, Any, Path], int]:
    return lambda site, page, tmp: _goto(page, site.record(name)["form_url"])


def _expired_link(site: Site, page: Any, tmp: Path) -> int:
    import time_machine

    from sharewise.plugin import links

    made = site.record("awaiting")
    signed_at = datetime.now() - timedelta(seconds=site.app.config["LINK_MAX_AGE"] + 60)
    with time_machine.travel(signed_at, tick=False):  # only the signing, in this thread
        token = links.make_token("northshire", made["record_id"], "form", site.app)
    return _goto(page, f"{site.base}/form/{token}")


def _store_down(site: Site, page: Any, tmp: Path) -> int:
    from sharewise.plugin.storage import StorageError
    from sharewise.plugin.storage.local import LocalStorage

    made = site.record("uploads")
    path = site.pdf_file(made, partial_answers(), tmp)
    with mock.patch.object(LocalStorage, "put", side_effect=StorageError("disk unavailable")):
        return _upload_on_page(page, made, path)


def _signed_in(path: str) -> Callable[[Site, Any, Path], int]:
    def reach(site: Site, page: Any, tmp: Path) -> int:
        site.record("overdue")
        site.record("awaiting")
        admin_sign_in(page, site.base, ADMIN_TOKEN)
        return _goto(page, f"{site.base}{path}")
    return reach


def _failed_sign_in(site: Site, page: Any, tmp: Path) -> int:
    _goto(page, f"{site.base}/admin/login")
    page.get_by_label("Admin token").fill("not-the-token")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Sign in").click()
    return nav.value.status


def _team_page(site: Site, page: Any, tmp: Path) -> int:
    from sharewise.plugin.links import team_url

    site.record("overdue")
    with site.app.test_request_context():
        url = team_url("northshire", "dafydd.llyr@example.org")
    return _goto(page, url)


def _admin_off(site: Site, page: Any, tmp: Path) -> int:
    import dataclasses

    from sharewise.plugin.settings import install, settings_of

    settings = settings_of(site.app)
    install(site.app, dataclasses.replace(settings, admin_tokens=()))
    try:
        return _goto(page, f"{site.base}/admin")
    finally:
        install(site.app, settings)


def _path(path: str) -> Callable[[Site, Any, Path], int]:
    return lambda site, page, tmp: _goto(page, f"{site.base}{path}")


def _wrong_method(site: Site, page: Any, tmp: Path) -> int:
    upload = site.record("awaiting")["upload_url"]
    return _goto(page, upload)  # the upload address takes POST only


@dataclass(frozen=True)
class PageCase:
    name: str
    reach: Callable[[Site, Any, Path], int]
    status: int


# Every HTML page the service renders. A new page is one more line here: a name, how to reach
# it (a signed link, a form to submit, a state to make first) and the status it answers with.
PAGES = [
    PageCase("practitioner-awaiting", _record_page("awaiting"), 200),
    PageCase("practitioner-incomplete-to-do-list", _record_page("incomplete"), 200),
    PageCase("practitioner-complete", _record_page("complete"), 200),
    PageCase("practitioner-cancelled", _record_page("cancelled"), 410),
    PageCase("practitioner-purged", _record_page("purged"), 410),
    PageCase("upload-result-incomplete", _upload_result("incomplete"), 200),
    PageCase("upload-result-rejected", _upload_result("rejected"), 400),
    PageCase("upload-result-complete", _upload_result("complete"), 200),
    PageCase("upload-store-unavailable", _store_down, 503),
    PageCase("online-form", _online_form, 200),
    PageCase("online-form-submitted-incomplete", _online_form_submitted, 200),
    PageCase("link-expired", _expired_link, 403),
    PageCase("link-invalid", _path("/form/not-a-token"), 403),
    PageCase("admin-login", _path("/admin/login"), 200),
    PageCase("admin-login-wrong-token", _failed_sign_in, 401),
    PageCase("admin-overview", _signed_in("/admin"), 200),
    PageCase("admin-overview-bad-filter", _signed_in("/admin?tenant=nowhere"), 400),
    PageCase("admin-team", _team_page, 200),
    PageCase("admin-team-link-invalid", _path("/admin/team/not-a-token"), 403),
    PageCase("admin-off", _admin_off, 404),
    PageCase("http-404", _path("/no-such-page"), 404),
    PageCase("http-405", _wrong_method, 405),
]


# ------------------------------------------------------------------------------ axe


@pytest.fixture(scope="module")
def contexts(chromium: Any) -> Iterator[dict[str, Any]]:
    """One browser context per width for the module (JavaScript on), emptied of cookies
    before each page."""
    made = {name: chromium.new_context(viewport={"width": w, "height": h})
            for name, (w, h) in WIDTHS.items()}
    yield made
    for context in made.values():
        context.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    from axe_playwright_python.base import AXE_SCRIPT

    return AXE_SCRIPT


def _axe(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (every default rule)."""
    page.evaluate(source)
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return results["violations"]


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [" ".join(map(str, node["target"])) for node in v["nodes"]]
        lines.append(f"  {v['id']} ({v['impact']}): {v['help']}\n"
                     + "".join(f"    - {t}\n" for t in targets))
    return "".join(lines)


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("case", PAGES, ids=[p.name for p in PAGES])
def test_no_serious_or_critical_axe_violation(contexts: dict[str, Any], site: Site,
                                              axe_source: str, case: PageCase, width: str,
                                              tmp_path: Path) -> None:
    w = WIDTHS[width][0]
    context = contexts[width]
    context.clear_cookies()  # signed out, whatever the page before did
    page = context.new_page()
    try:
        status = case.reach(site, page, tmp_path)
        assert status == case.status, f"{case.name} answered {status}"
        url = page.url
        assert page.evaluate("document.contentType") == "text/html"
        violations = _axe(page, axe_source)
        wide = page.evaluate("document.documentElement.scrollWidth")
    finally:
        page.close()
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    lesser = [v for v in violations if v["impact"] not in BLOCKING]
    if lesser:
        print(f"\n{case.name} at {width}: lesser axe findings\n{_describe(lesser)}")
    assert not blocking, (f"{case.name} at {width} ({url}): serious or critical axe "
                          f"violations\n{_describe(blocking)}")
    # what axe cannot see: at 320 px nothing is wider than the screen (WCAG 1.4.10, reflow)
    assert wide <= w, f"{case.name} at {width}: the page is {wide} px wide, scrolls sideways"


def test_the_check_finds_what_it_should(chromium: Any, site: Site, axe_source: str) -> None:
    """The harness is not blind: an image without text and faint text added to a real page
    are reported as critical and serious."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        _goto(page, site.record("awaiting")["form_url"])
        page.evaluate("""() => {
            document.querySelector('main').insertAdjacentHTML('beforeend',
                '<img src="x.png"><p id="faint">faint</p>');
            document.getElementById('faint').style.color = '#cccccc'; }""")
        found = {v["id"]: v["impact"] for v in _axe(page, axe_source)}
    finally:
        context.close()
    assert found == {"image-alt": "critical", "color-contrast": "serious"}, found
