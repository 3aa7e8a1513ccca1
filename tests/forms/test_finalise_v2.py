"""The version 2 final record (issue 16): the fill-in instructions are gone, every page is
numbered out of all of them (the summary counted), and the summary shows the legal basis and
who endorsed. Checked in what PDFium and poppler draw and extract."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from sharewise.forms.finalise import finalise
from sharewise.forms.prefill import fill
from sharewise.forms.templatefile import template_path
from tests.forms.render import pdfium_text
from tests.forms.v2_scenarios import scenarios

AGREEMENTS = (("mash_2024", "Northshire MASH agreement 2024"),
              ("schools", "Schools information sharing protocol"))
AUDIT = [{"at": "2026-03-10T09:00:00+00:00", "event": "created", "actor": "host"},
         {"at": "2026-03-10T12:00:00+00:00", "event": "completed", "actor": "practitioner"}]


@pytest.fixture(scope="module")
def final() -> bytes:
    values = {**scenarios()["s47_without_consent"], "sharing_agreement": "mash_2024"}
    return finalise(values, record_id="SR-SCENARIO", completed_at=datetime(2026, 3, 10, 12,
                    tzinfo=UTC), audit=AUDIT, version=2, tenant_options=AGREEMENTS).pdf


def _pages_text(pdf: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def test_the_instructions_are_dropped_and_every_page_is_numbered_out_of_all(final):
    blank = " ".join(pdfium_text(template_path(2).read_bytes()).split())
    assert "The form sends nothing by itself" in blank  # the blank form has them
    text = " ".join(pdfium_text(final).split())
    assert "The form sends nothing by itself" not in text
    pages = _pages_text(final)
    total = len(pages)
    assert total == len(PdfReader(io.BytesIO(template_path(2).read_bytes())).pages) + 1
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in page, number
        assert len(re.findall(r"Page \d+ of \d+", page)) == 1  # the form's own footer is gone
    assert "Decision record summary" in pages[-1]


def test_the_summary_shows_the_legal_basis_and_who_endorsed(final):
    summary = _pages_text(final)[-1]
    for shown in ("Legal obligation", "A legal requirement", "A statutory duty",
                  "Pat Manager", "Team manager", "10/03/2026", "Social worker"):
        assert shown in summary, shown


def test_the_tenants_agreements_are_offered_and_read_back_on_the_form():
    from sharewise.forms.reader import read_pdf
    from sharewise.forms.spec import form_for
    from tests.forms.viewers import fill_with_pdfium

    values = {k: v for k, v in scenarios()["s47_without_consent"].items()
              if k in form_for(2).names and form_for(2)[k].prefilled}
    blank = fill(values, record_id="SR-SCENARIO", version=2, tenant_options=AGREEMENTS).pdf
    field = PdfReader(io.BytesIO(blank)).get_fields()["sharing_agreement"]
    assert [list(map(str, o)) for o in field["/Opt"]] == [
        ["none", "None"], ["mash_2024", "Northshire MASH agreement 2024"],
        ["schools", "Schools information sharing protocol"]]
    picked = fill_with_pdfium(blank, {"sharing_agreement": "Schools information sharing protocol"})
    read = read_pdf(picked, "SR-SCENARIO", {}, 2, AGREEMENTS)
    assert read.values["sharing_agreement"] == "schools" and not read.problems
    # a form read without the tenant's agreements does not know the code
    other = read_pdf(picked, "SR-SCENARIO", {}, 2, ())
    assert [p.field for p in other.problems] == ["sharing_agreement"]
