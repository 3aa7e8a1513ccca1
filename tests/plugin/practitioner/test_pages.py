"""The practitioner page, the PDF download and the status link."""

from __future__ import annotations

import hashlib
import io
import re
from html.parser import HTMLParser

import pytest
from pypdf import PdfReader

from sharewise.plugin.storage import storage
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    partial_answers,
    path_of,
    record_row,
    versions,
)

JSON = {"Accept": "application/json", "Content-Type": "application/pdf"}


class Outline(HTMLParser):
    """Headings, labels, inputs and links of a page (enough to check its structure)."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[int, str]] = []
        self.labels: dict[str, str] = {}
        self.inputs: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.scripts = 0
        self._heading: int | None = None
        self._label: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if re.fullmatch(r"h[1-6]", tag):
            self._heading, self._text = int(tag[1]), []
        elif tag == "label":
            self._label, self._text = a.get("for"), []
        elif tag in ("input", "button"):
            self.inputs.append({"tag": tag, **a})
        elif tag == "a":
            self.links.append(a)
        elif tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self._text.append(data)

    def handle_endtag(self, tag):
        text = " ".join("".join(self._text).split())
        if self._heading and tag == f"h{self._heading}":
            self.headings.append((self._heading, text))
            self._heading = None
        elif tag == "label" and self._label:
            self.labels[self._label] = text
            self._label = None


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


@pytest.fixture
def made(app, signed_post, sample_event):
    return create_record(signed_post, sample_event, due_at="2026-07-01T16:00:00Z")


def test_page_shows_what_is_asked_and_is_accessible(app, client, made):
    resp = client.get(path_of(made["form_url"]))
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    html = resp.get_data(as_text=True)
    page = outline(html)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<html lang="en-GB">' in html
    assert page.scripts == 0
    # headings in order: one h1, no level skipped
    levels = [level for level, _ in page.headings]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False))
    assert page.headings[0][1] == "Information-sharing decision for case CASE-2026-0042"
    # status, due date in the tenant's time zone (16:00 UTC in July is 17:00 in London)
    assert "Waiting for your completed form" in html
    assert "Wednesday 1 July 2026, 17:00 BST" in html
    assert "Northshire Police has asked for information" in html
    # the download button and a labelled file input with a submit button
    [download] = [a for a in page.links if (a.get("href") or "").endswith("/pdf")]
    assert download["class"] == "button" and "download" in download
    file_input = next(i for i in page.inputs if i.get("type") == "file")
    assert file_input["name"] == "file" and file_input["id"] == "file"
    assert page.labels["file"].startswith("Completed form (PDF, up to 12 MB)")
    assert any(i["tag"] == "button" and i.get("type") == "submit" for i in page.inputs)
    assert 'enctype="multipart/form-data"' in html
    # no personal data of the subject or practitioner on the page
    for secret in ("Zoë", "Siân", "Dafydd", "School attendance"):
        assert secret not in html


def test_due_date_is_shown_in_the_tenants_time_zone(app, client, signed_post, sample_event,
                                                    other_tenant):
    path = app.config["TENANTS_IN_USE"]
    with open(path, "a") as fh:  # the last table in the file is southvale's
        fh.write('timezone = "America/New_York"\n')
    made = create_record(signed_post, sample_event, tenant="southvale",
                         due_at="2026-07-01T16:00:00Z")
    html = client.get(path_of(made["form_url"])).get_data(as_text=True)
    assert "Wednesday 1 July 2026, 12:00 EDT" in html
    assert "Southvale Borough Council" in html


def test_download_is_the_prefilled_pdf_as_an_attachment(app, client, made):
    resp = client.get(path_of(made["form_pdf_url"]))
    assert resp.status_code == 200
    assert resp.mimetype == "application/pdf"
    rid = made["record_id"]
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{rid}.pdf"'
    assert resp.headers["Cache-Control"] == "no-store"
    record = record_row(app, rid)
    info = PdfReader(io.BytesIO(resp.data)).metadata
    assert info["/SharewiseRecord"] == rid
    assert info["/SharewisePrefillHash"] == record.prefill_hash
    # the same bytes on every download, kept in the file store
    assert client.get(path_of(made["form_pdf_url"])).data == resp.data
    with app.app_context():
        assert storage(app).get(record.prefill_pdf_key) == resp.data


def test_after_a_partial_upload_the_download_is_their_own_upload(app, client, made):
    rid = made["record_id"]
    mine = filled_pdf(app, rid, partial_answers())
    assert client.post(path_of(made["upload_url"]), data=mine, headers=JSON).status_code == 200
    # a later rejected upload does not replace what they download
    bad = client.post(path_of(made["upload_url"]), data=b"not a pdf", headers=JSON)
    assert bad.status_code == 400
    resp = client.get(path_of(made["form_pdf_url"]))
    assert resp.data == mine
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{rid}-upload-1.pdf"'
    page = client.get(path_of(made["form_url"])).get_data(as_text=True)
    assert "Download your form to continue (PDF)" in page
    assert "Still to do from your last upload" in page


def test_after_completion_the_download_is_the_final_record(app, client, made):
    rid = made["record_id"]
    pdf = filled_pdf(app, rid, complete_answers())
    assert client.post(path_of(made["upload_url"]), data=pdf, headers=JSON).status_code == 200
    resp = client.get(path_of(made["form_pdf_url"]))
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{rid}-final.pdf"'
    assert hashlib.sha256(resp.data).hexdigest() == record_row(app, rid).final_sha256
    page = client.get(path_of(made["form_url"]))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>This decision record is already complete</h1>" in html
    assert "<form" not in html


def test_page_upload_shows_missing_items_grouped_by_rule(app, client, made):
    rid = made["record_id"]
    pdf = filled_pdf(app, rid, partial_answers())
    resp = client.post(path_of(made["form_url"]),
                       data={"file": (io.BytesIO(pdf), "decision.pdf")},
                       content_type="multipart/form-data")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    page = outline(html)
    assert (2, "We received your form, but it is not finished yet") in page.headings
    rules = [text for level, text in page.headings if level == 3 and text.startswith("Rule")]
    assert [r.split(".")[0] for r in rules] == ["Rule 1", "Rule 2", "Rule 3", "Rule 4",
                                                "Rule 6"]
    missing = record_row(app, rid).missing
    assert {m["rule"] for m in missing} == {1, 2, 3, 4, 6}
    from markupsafe import escape

    for item in missing:
        text = re.sub(r"^Rule [1-7] \([^)]*\):\s*", "", item["message"])
        assert str(escape(text[:1].upper() + text[1:])) in html
    assert "Started: some items are still missing" in html


def test_page_upload_that_completes_says_thank_you(app, client, made):
    rid = made["record_id"]
    partial = filled_pdf(app, rid, partial_answers())
    client.post(path_of(made["form_url"]), data={"file": (io.BytesIO(partial), "a.pdf")},
                content_type="multipart/form-data")
    full = filled_pdf(app, rid, complete_answers())
    resp = client.post(path_of(made["form_url"]), data={"file": (io.BytesIO(full), "b.pdf")},
                       content_type="multipart/form-data")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert '<h2 id="result-heading">Complete, thank you</h2>' in html
    assert "(upload 2)" in html
    assert "Download the final record (PDF)" in html


def test_upload_json_answer_and_status_link(app, client, made):
    rid = made["record_id"]
    resp = client.post(path_of(made["upload_url"]),
                       data=filled_pdf(app, rid, partial_answers()), headers=JSON)
    assert resp.status_code == 200
    body = resp.get_json()
    assert list(body) == ["record_id", "status", "version", "missing"]
    assert (body["record_id"], body["status"], body["version"]) == (rid, "incomplete", 1)
    assert {m["field"] for m in body["missing"]} >= {"lawful_basis", "consent", "check_secure"}
    assert all(set(m) == {"field", "rule", "message"} for m in body["missing"])

    status = client.get(path_of(made["status_url"])).get_json()
    assert status == {"record_id": rid, "status": "incomplete", "missing": body["missing"],
                      "schema_version": 2, "due_at": "2026-07-01T16:00:00Z",
                      "completed_at": None, "purged_at": None}

    done = client.post(path_of(made["upload_url"]),
                       data=filled_pdf(app, rid, complete_answers()), headers=JSON).get_json()
    assert done == {"record_id": rid, "status": "complete", "version": 2, "missing": []}
    status = client.get(path_of(made["status_url"])).get_json()
    assert status["status"] == "complete" and status["missing"] == []
    assert status["completed_at"].endswith("Z")


def test_raw_upload_from_a_script_without_accept_gets_json(app, client, made):
    resp = client.post(path_of(made["upload_url"]),
                       data=filled_pdf(app, made["record_id"], partial_answers()),
                       headers={"Content-Type": "application/pdf", "Accept": "*/*"})
    assert resp.mimetype == "application/json"
    assert resp.get_json()["version"] == 1
    [version] = versions(app, made["record_id"])
    assert version.source == "api"


@pytest.mark.parametrize(("overrides", "text"), [
    ({"direction": "proactive_share"},
     "You are considering sharing information about a person on this case with Northshire "
     "Police."),
    ({"requester": {"organisation": "Riverside Primary School"}},
     "Riverside Primary School has asked for information about a person on this case, to be "
     "shared with Northshire Police."),
])
def test_what_is_asked_follows_the_request(app, client, signed_post, sample_event, overrides,
                                           text):
    made = create_record(signed_post, sample_event, **overrides)
    html = client.get(path_of(made["form_url"])).get_data(as_text=True)
    assert " ".join(html.split()).count(text) == 1


def _assert_plain_accessible_page(html: str) -> None:
    page = outline(html)
    levels = [level for level, _ in page.headings]
    assert levels and levels[0] == 1 and levels.count(1) == 1, page.headings
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), page.headings
    assert page.scripts == 0
    assert '<html lang="en-GB">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert 'href="#main">Skip to main content</a>' in html
    for field in page.inputs:
        if field["tag"] == "input":
            assert field.get("id") in page.labels, field  # every input has a real label


def test_every_page_variant_is_plain_and_accessible(app, client, made, signed_post,
                                                   sample_event):
    rid = made["record_id"]
    pages = [client.get(path_of(made["form_url"]))]  # awaiting
    pages.append(client.post(path_of(made["upload_url"]), data=b"nope",
                             headers={"Content-Type": "application/pdf",
                                      "Accept": "text/html"}))  # refused upload
    pages.append(client.post(path_of(made["form_url"]), content_type="multipart/form-data",
                             data={"file": (io.BytesIO(filled_pdf(app, rid, partial_answers())),
                                            "a.pdf")}))  # incomplete
    pages.append(client.get(path_of(made["form_url"])))  # standing to-do list
    pages.append(client.get("/form/not-a-token"))  # link problem
    pages.append(client.post(path_of(made["form_url"]), content_type="multipart/form-data",
                             data={"file": (io.BytesIO(filled_pdf(app, rid, complete_answers())),
                                            "b.pdf")}))  # complete, thank you
    pages.append(client.get(path_of(made["form_url"])))  # already complete
    other = create_record(signed_post, sample_event)
    request_id = record_row(app, other["record_id"]).request_id
    signed_post("northshire", {"type": "share.cancelled", "timestamp": "2026-01-01T00:00:00Z",
                               "data": {"request_id": request_id}})
    pages.append(client.get(path_of(other["form_url"])))  # cancelled
    assert [p.status_code for p in pages] == [200, 400, 200, 200, 403, 200, 200, 410]
    for resp in pages:
        assert resp.mimetype == "text/html"
        _assert_plain_accessible_page(resp.get_data(as_text=True))
