"""The README's pictures: taken from the demo, in the states the README describes.

``sharewise serve`` starts with no tenants file (so it writes the demo one: tenant ``demo``,
"Demo County Council") and an admin token; ``sharewise demo`` plays the host, twice. Headless
Chromium (JavaScript off, as the pages need none) then takes each picture of
:data:`tests.readme.SCREENSHOTS`, after checking the page shows what the README says of it:

* ``practitioner-page.png`` (walk-through, step 3): the first record's page as first opened:
  the case reference, the due date, the download button, "Fill in the form online", the upload
  form.
* ``online-form.png`` (the practitioner's journey): the online form that link opens, its top.
* ``practitioner-page-incomplete.png`` (the practitioner's journey, step 4): the page after an
  upload of the prefilled form with some answers typed in through PDFium (as Chrome's viewer
  does): "not finished yet" and the missing items by golden rule.
* ``admin-overview.png`` (Operations): ``/admin`` signed in with the token: the two records,
  one waiting, one started.

The pictures (in 64 colours, a third of the bytes) are saved in the test's temporary
directory; with ``UPDATE_DOCS_SCREENSHOTS=1`` also in ``docs/img`` (the README's), so an
ordinary run leaves the working tree untouched. About 15 s.
A second test checks that every picture the README (or a page of docs/) embeds is one of
these, exists, is a PNG of the generator's size, and has the generator's alt text.
"""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.browser import UPLOAD_BUTTON, UPLOAD_LABEL, admin_sign_in, download, upload
from tests.readme import README, ROOT, SCREENSHOTS, Screenshot, demo_answer, images
from tests.serving import SHAREWISE, Served

TOKEN = "readme-screenshots-admin-token-0123456789abcdef"
SHOT = {s.file: s for s in SCREENSHOTS}


def _check_png(path: Path, shot: Screenshot) -> None:
    """``path`` is a PNG of ``shot``'s size (at least its height for a full-page one)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    assert width == shot.width and (height >= shot.height if shot.full_page
                                    else height == shot.height), (shot.file, width, height)


def _take(page: Any, shot: Screenshot, tmp: Path) -> None:
    """Screenshot ``page`` as ``shot`` says, in 64 colours (a third of the bytes; text and
    the pages' flat colours look the same), into ``tmp`` (and ``docs/img`` when asked)."""
    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot(full_page=shot.full_page))).convert("RGB")
    small = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(tmp / shot.file, optimize=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        (ROOT / shot.path).parent.mkdir(parents=True, exist_ok=True)
        small.save(ROOT / shot.path, optimize=True)


@contextmanager
def _shot(chromium: Any, file: str, shots: Path) -> Iterator[Any]:
    """A page in a new context of the picture's size; once the block has checked it, the
    picture ``file`` is taken. The context is closed either way."""
    shot = SHOT[file]
    context = chromium.new_context(java_script_enabled=False, accept_downloads=True,
                                   viewport={"width": shot.width, "height": shot.height})
    try:
        page = context.new_page()
        yield page
        _take(page, shot, shots)
    finally:
        context.close()


@pytest.mark.browser
def test_the_readme_pictures_come_from_the_demo(chromium: Any, tmp_path: Path) -> None:
    from tests.forms.viewers import fill_with_pdfium
    from tests.plugin.uploads.journey import as_typed, partial_answers

    served = Served(tmp_path, env={"SHAREWISE_ADMIN_TOKENS": TOKEN,
                                   "SHAREWISE_WEB_WORKERS": "1"})
    shots = tmp_path / "shots"
    shots.mkdir()
    try:
        served.wait_ready()

        def demo() -> dict[str, Any]:
            run = subprocess.run([SHAREWISE, "demo"], cwd=tmp_path, env=served.env,
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
            return demo_answer(run.stdout)

        first, second = demo(), demo()
        assert first["form_url"].startswith(f"{served.base}/form/")

        # walk-through, step 3: the page as first opened
        with _shot(chromium, "practitioner-page.png", shots) as page:
            assert page.goto(first["form_url"]).status == 200
            assert "Demo County Council" in page.locator("header").inner_text()
            assert page.get_by_role("heading", level=1).inner_text() == (
                "Information-sharing decision for case CASE-2026-0042")
            assert page.get_by_text("Waiting for your completed form").is_visible()
            assert page.locator("dt", has_text="Due by").is_visible()
            for link in ("Download the form (PDF)", "Fill in the form online"):
                assert page.get_by_role("link", name=link).is_visible(), link
            assert page.get_by_label(UPLOAD_LABEL).is_visible()
            assert page.get_by_role("button", name=UPLOAD_BUTTON).is_visible()
            assert page.locator("#result-heading").count() == 0  # nothing uploaded yet

        # the online form the page links to
        with _shot(chromium, "online-form.png", shots) as page:
            page.goto(first["form_url"])
            page.get_by_role("link", name="Fill in the form online").click()
            page.wait_for_url(re.compile(r".*/online$"))
            assert page.get_by_role("heading", level=1).inner_text() == (
                "Information-sharing decision for case CASE-2026-0042")
            assert page.locator("form.online section.form-section").count() >= 7

        # the practitioner's journey, step 4: after an incomplete upload
        with _shot(chromium, "practitioner-page-incomplete.png", shots) as page:
            page.goto(first["form_url"])
            prefilled = download(page, "Download the form (PDF)", tmp_path / "prefilled.pdf")
            upload(page, tmp_path / "attempt.pdf",
                   fill_with_pdfium(prefilled, as_typed(partial_answers())))
            assert page.locator("#result-heading").inner_text() == (
                "We received your form, but it is not finished yet")
            assert page.locator("section[role=status] h3").first.inner_text().startswith(
                "Rule 1.")
            assert page.get_by_text("Started: some items are still missing").is_visible()

        # Operations: the overview, signed in
        with _shot(chromium, "admin-overview.png", shots) as page:
            admin_sign_in(page, served.base, TOKEN)
            rows = page.locator("table.records tbody tr").all_inner_texts()
            assert len(rows) == 2, rows
            by_record = {r.split("\t")[0]: r for r in rows}
            assert "incomplete" in by_record[first["record_id"]]
            assert "awaiting completion" in by_record[second["record_id"]]
            assert all("\tdemo\t" in r for r in rows)
    finally:
        served.stop()
    for shot in SCREENSHOTS:
        _check_png(shots / shot.file, shot)


def test_every_readme_picture_is_a_generated_png() -> None:
    """The README's pictures are exactly :data:`SCREENSHOTS`, with the generator's alt text,
    and each is a PNG of the generator's size; a page of docs/ embeds only pictures that
    exist."""
    shown = images(README.read_text())
    assert sorted(set(shown)) == sorted((s.alt, s.path) for s in SCREENSHOTS)
    for shot in SCREENSHOTS:
        _check_png(ROOT / shot.path, shot)
    for page in (ROOT / "docs").glob("*.md"):
        for ref in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            if "://" not in ref:
                assert (page.parent / ref).is_file(), f"{page.name} embeds a missing {ref}"
