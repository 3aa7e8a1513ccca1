"""The overview in headless Chromium (JavaScript off, as the pages need none): sign in with
the form, see the overdue record first, filter, sign out; a screenshot of the page is saved in
the test's temporary directory (the README's picture of the overview is taken from the demo
tenant by tests/plugin/test_readme_screenshots.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.records.models import Record
from tests.plugin.browser import admin_sign_in
from tests.plugin.uploads.journey import create_record

pytestmark = pytest.mark.browser

TOKEN = "admin-token-for-the-browser-test-0123456789"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    app_config["ADMIN_TOKENS"] = TOKEN
    return app_config


def test_the_overview_in_chromium(chromium: Any, live_server: str, app: Any, signed_post: Any,
                                  sample_event: Any, tmp_path: Path, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the browser runs once, on the embedded default")
    on_time = create_record(signed_post, sample_event, case={"reference": "CASE-ON-TIME"})
    late = create_record(signed_post, sample_event, case={"reference": "CASE-LATE"},
                         urgency="urgent")
    with session_scope(app) as session:
        session.execute(update(Record).where(Record.public_id == late["record_id"])
                        .values(due_at=utcnow() - timedelta(hours=3)))
    context = chromium.new_context(java_script_enabled=False,
                                   viewport={"width": 1200, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{live_server}/admin")
        assert page.get_by_role("heading", level=1).inner_text() == "Sign in to the overview"
        page.get_by_label("Admin token").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").inner_text() == "That token is not valid."
        page.get_by_label("Admin token").fill(TOKEN)
        page.keyboard.press("Enter")  # keyboard only
        page.wait_for_url(f"{live_server}/admin")
        assert page.get_by_role("heading", level=1).inner_text() == "Records"
        rows = page.locator("table.records tbody tr")
        assert rows.count() == 2
        first = rows.nth(0).inner_text()
        assert late["record_id"] in first and "overdue" in first and "(urgent)" in first
        assert on_time["record_id"] in rows.nth(1).inner_text()
        counts = page.locator("table.counts").inner_text()
        assert "northshire" in counts and "awaiting completion\t2" in counts
        page.screenshot(path=tmp_path / "admin-overview.png", full_page=True)
        page.get_by_label("State", exact=True).select_option("complete")
        page.get_by_role("button", name="Show").click()
        assert page.get_by_text("No records to show.").is_visible()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{live_server}/admin/login")
        page.goto(f"{live_server}/admin")
        assert page.url == f"{live_server}/admin/login"
        # a phone-sized screen still shows every record (JavaScript on only to read the
        # computed style: the pages have no script)
        phone = chromium.new_context(viewport={"width": 320, "height": 640})
        try:
            small = phone.new_page()
            admin_sign_in(small, live_server, TOKEN)
            assert small.locator("table.records tbody tr").count() == 2
            box = small.locator("table.records").bounding_box()
            assert box is not None and box["width"] <= 320  # no sideways scrolling
            # the header row is hidden there: each cell names its column itself
            first = small.locator("table.records tbody tr").first.locator("td")
            names = first.evaluate_all(
                "cells => cells.map(c => getComputedStyle(c, '::before').content)")
            assert names[:2] == ['"Record: "', '"Case reference: "'], names
        finally:
            phone.close()
    finally:
        context.close()
    assert (tmp_path / "admin-overview.png").stat().st_size > 10_000
