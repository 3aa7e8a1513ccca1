"""The journey as a person does it, in headless Chromium with JavaScript switched off.

Open ``form_url``, download the PDF with the page's button, fill it through PDFium's form API
(what Chrome's own viewer runs), upload it with the page's form, read the missing items; fill
the rest, upload again, read the completion message. A screenshot of each state is saved in the
test's temporary directory (the README's pictures are taken from the demo tenant by
tests/plugin/test_readme_screenshots.py).

A second test checks the page with a keyboard and on a phone-sized screen.
"""

from __future__ import annotations

import pytest

from tests.plugin.browser import download, upload
from tests.plugin.uploads.journey import PARTIAL_KEYS, as_typed, complete_answers, partial_answers

pytestmark = pytest.mark.browser


def test_practitioner_journey_in_chromium(chromium, live_server, signed_post, sample_event,
                                          tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("the browser journey runs once, on the embedded default")
    from tests.forms.viewers import fill_with_pdfium

    made = signed_post("northshire", sample_event()).get_json()
    assert made["form_url"].startswith(live_server)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = chromium.new_context(java_script_enabled=False, accept_downloads=True,
                                   viewport={"width": 1000, "height": 900})
    try:
        page = context.new_page()
        response = page.goto(made["form_url"])
        assert response is not None and response.status == 200
        assert page.get_by_role("heading", level=1).inner_text() == (
            "Information-sharing decision for case CASE-2026-0042")
        assert page.get_by_text("Waiting for your completed form").is_visible()
        page.screenshot(path=shots / "1-opened.png", full_page=True)

        prefilled = download(page, "Download the form (PDF)", tmp_path / "prefilled.pdf")
        assert prefilled.startswith(b"%PDF-")
        first = fill_with_pdfium(prefilled, as_typed(partial_answers()))
        upload(page, tmp_path / "attempt-1.pdf", first)

        result = page.locator("#result-heading")
        assert result.inner_text() == "We received your form, but it is not finished yet"
        rules = page.locator("section[role=status] h3").all_inner_texts()
        assert [r.split(".")[0] for r in rules] == ["Rule 1", "Rule 2", "Rule 3", "Rule 4",
                                                    "Rule 6"]
        assert page.locator("ul.missing li").count() >= 5
        assert page.get_by_text("Started: some items are still missing").is_visible()
        page.screenshot(path=shots / "2-incomplete.png", full_page=True)

        own = download(page, "Download your form to continue (PDF)", tmp_path / "mine.pdf")
        assert own == first  # their own last upload comes back, nothing to retype
        rest = {k: v for k, v in complete_answers().items() if k not in PARTIAL_KEYS}
        second = fill_with_pdfium(own, as_typed(rest))
        upload(page, tmp_path / "attempt-2.pdf", second)

        assert page.locator("#result-heading").inner_text() == "Complete, thank you"
        assert page.get_by_role("link", name="Download the final record (PDF)").is_visible()
        assert page.locator("input[type=file]").count() == 0
        page.screenshot(path=shots / "3-complete.png", full_page=True)

        final = download(page, "Download the final record (PDF)", tmp_path / "final.pdf")
        assert final.startswith(b"%PDF-")
    finally:
        context.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-opened.png", "2-incomplete.png", "3-complete.png"]


def test_page_works_with_the_keyboard_and_on_a_phone(chromium, live_server, signed_post,
                                                     sample_event, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("runs once, on the embedded default")
    made = signed_post("northshire", sample_event()).get_json()
    context = chromium.new_context(viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        page.goto(made["form_url"])
        # nothing wider than the screen: one column, no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=tmp_path / "phone.png", full_page=True)
        # Tab order: skip link, download button, the online form, file input, upload button
        reached = []
        for _ in range(5):
            page.keyboard.press("Tab")
            reached.append(page.evaluate(
                "(() => { const e = document.activeElement;"
                " return [e.tagName, e.getAttribute('type') || '', e.textContent.trim(),"
                " getComputedStyle(e).outlineStyle]; })()"))
        tags = [(tag, kind) for tag, kind, _text, _outline in reached]
        assert tags == [("A", ""), ("A", ""), ("A", ""), ("INPUT", "file"), ("BUTTON", "submit")]
        assert reached[0][2] == "Skip to main content"
        assert reached[1][2] == "Download the form (PDF)"
        assert reached[2][2] == "Fill in the form online"
        # focus is visible on every stop
        assert all(outline != "none" for *_rest, outline in reached)
    finally:
        context.close()


def test_the_status_does_not_look_like_a_button(chromium, live_server, signed_post, sample_event,
                                                backend):
    """Drawn as Chromium draws it: no border, box, background or pointer on the state."""
    if backend != "sqlite":
        pytest.skip("the browser runs once, on the embedded default")
    made = signed_post("northshire", sample_event()).get_json()
    context = chromium.new_context()  # JavaScript on, only to read the computed style
    try:
        page = context.new_page()
        page.goto(made["form_url"])
        status = page.locator("strong.status")
        assert status.inner_text() == "Waiting for your completed form"
        style = status.evaluate("""e => { const s = getComputedStyle(e);
            return [s.borderTopStyle, s.borderLeftStyle, s.backgroundColor, s.boxShadow,
                    s.cursor, s.paddingLeft]; }""")
        assert style == ["none", "none", "rgba(0, 0, 0, 0)", "none", "auto", "0px"], style
    finally:
        context.close()
