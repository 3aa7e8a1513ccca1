"""The online form as a person uses it, in headless Chromium, with JavaScript off and on.

From the record's page, follow "Fill in the form online", answer part of the form, save a
draft from the last section, read the problems (grouped by golden rule, each linking to its
field), follow one link, answer the rest and submit: the record is complete, with the final
PDF, exactly as after a PDF upload. With JavaScript on, the same at 320 px wide, checking the
page never scrolls sideways.
"""

from __future__ import annotations

from typing import Any

import pytest

from sharewise.forms.spec import load_spec
from sharewise.forms.webform import control_value
from tests.plugin.uploads.journey import (
    PARTIAL_KEYS,
    complete_answers,
    partial_answers,
    record_row,
    versions,
)

pytestmark = pytest.mark.browser

SPEC = load_spec(2)


def answer(page: Any, answers: dict[str, Any]) -> None:
    """Set each control as a person would: type, tick, choose."""
    for name, value in answers.items():
        spec, text = SPEC[name], control_value(SPEC[name], value)
        if spec.type == "checkbox":
            box = page.locator(f"#f-{name}")
            box.check() if value else box.uncheck()
        elif spec.type == "choice" and spec.widget == "radio":
            page.locator(f'input[name="{name}"][value="{text}"]').check()
        elif spec.type == "choice":
            page.locator(f"#f-{name}").select_option(text)
        else:
            page.locator(f"#f-{name}").fill(text)


@pytest.mark.parametrize("javascript", [False, True], ids=["no-js", "js"])
def test_the_online_form_completes_a_record(chromium, live_server, signed_post, sample_event,
                                            app, backend, tmp_path, javascript):
    if backend != "sqlite":
        pytest.skip("the browser journey runs once, on the embedded default")
    made = signed_post("northshire", sample_event()).get_json()
    rid = made["record_id"]
    answers = complete_answers()  # once: its times are "a minute ago"
    partial = {k: answers[k] for k in partial_answers()}
    width = 320 if javascript else 1000
    context = chromium.new_context(java_script_enabled=javascript, accept_downloads=True,
                                   viewport={"width": width, "height": 800})
    try:
        page = context.new_page()
        page.goto(made["form_url"])
        with page.expect_navigation():
            page.get_by_role("link", name="Fill in the form online").click()
        # the page signs its links afresh: the same record's page link, plus /online
        assert page.url.startswith(f"{live_server}/form/") and page.url.endswith("/online")
        assert page.get_by_role("heading", name="Rule 1. The law helps you share safely"
                                ).is_visible()
        if javascript:  # every control has a label of its own
            unlabelled = page.evaluate(
                "[...document.querySelectorAll('input, textarea, select')]"
                ".filter(e => e.labels.length === 0).map(e => e.id)")
            assert unlabelled == []
        answer(page, partial)
        with page.expect_navigation():
            page.locator("#section-7").get_by_role("button", name="Save a draft").click()

        summary = page.locator(".error-summary")
        assert "Draft saved as version 1" in summary.locator("h2").inner_text()
        rules = summary.locator("h3").all_inner_texts()
        assert [r.split(".")[0] for r in rules] == ["Rule 1", "Rule 2", "Rule 3", "Rule 4",
                                                    "Rule 6"]
        first = summary.locator("a").first
        target = first.get_attribute("href")
        assert target and target.startswith("#f-")
        first.click()
        assert page.url.endswith(target)
        assert page.locator(target).count() == 1
        if javascript:  # the link moved focus to the field (a same-page link)
            assert page.evaluate("document.activeElement.id") == target[1:]
        # the saved answers are still in the form
        decision = control_value(SPEC["decision"], partial["decision"])
        assert page.locator(f'input[name="decision"][value="{decision}"]').is_checked()
        page.screenshot(path=tmp_path / f"online-draft-{width}.png", full_page=True)

        rest = {k: v for k, v in answers.items() if k not in PARTIAL_KEYS}
        answer(page, rest)
        with page.expect_navigation():
            page.get_by_role("button", name="Submit the decision record").click()
        assert page.locator("#result-heading").inner_text() == "Complete, thank you"
        if javascript:
            assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()

    record = record_row(app, rid)
    assert record.status == "complete" and record.final_sha256
    saved = versions(app, rid)
    assert [(v.source, v.outcome) for v in saved] == [("online", "draft"),
                                                      ("online", "accepted")]
    for name, value in answers.items():
        assert saved[-1].values[name] == value, name


def test_the_online_form_works_from_the_keyboard(chromium, live_server, signed_post,
                                                 sample_event, app, backend):
    if backend != "sqlite":
        pytest.skip("the browser journey runs once, on the embedded default")
    made = signed_post("northshire", sample_event()).get_json()
    context = chromium.new_context(viewport={"width": 1000, "height": 800})
    try:
        page = context.new_page()
        page.goto(made["form_url"] + "/online")

        def focused() -> str:
            return page.evaluate("document.activeElement.id || document.activeElement.textContent")

        # Tab from the top of the page to the first field the practitioner fills
        for _ in range(10):
            page.keyboard.press("Tab")
            if focused() == "f-purpose":
                break
        assert focused() == "f-purpose"
        page.keyboard.press("Control+A")
        page.keyboard.type("To decide on support at school.")
        page.keyboard.press("Tab")
        assert focused() == "f-information_requested"
        page.keyboard.press("Tab")
        assert "Save a draft" in focused()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "Draft saved as version 1" in page.locator(".error-summary h2").inner_text()
    finally:
        context.close()
    [saved] = versions(app, made["record_id"])
    assert saved.values["purpose"] == "To decide on support at school."
