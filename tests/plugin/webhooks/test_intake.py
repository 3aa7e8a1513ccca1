"""POST /webhooks/<tenant>: every response of the inbound contract."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
from sqlalchemy import func, select

from sharewise.plugin.records.models import AuditEntry, Record, WebhookEvent
from sharewise.plugin.signing import generate_secret, sign
from sharewise.plugin.storage import storage
from tests.answers import same_answer, status_record_id

PROBLEM = "application/problem+json"


def _count(db_session, model):
    db_session.rollback()  # end the snapshot: see what the app committed since
    return db_session.scalar(select(func.count()).select_from(model))


def _path(url):
    assert url.startswith("http://sharewise.test/")
    return url[len("http://sharewise.test"):]


# ------------------------------------------------------------------ 201 / 200


def test_first_delivery_creates_record(client, tenant, signed_post, sample_event, db_session, app):
    event = sample_event(request_id="REQ-1")
    resp = signed_post(tenant, event, webhook_id="msg_a")
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert set(body) >= {"record_id", "status", "form_url", "form_pdf_url", "upload_url",
                         "status_url", "due_at"}
    assert body["status"] == "awaiting_completion"
    assert body["record_id"].startswith("SR-") and len(body["record_id"]) == 19
    assert "warnings" not in body  # every character of the sample is in the font

    record = db_session.scalar(select(Record))
    assert record.public_id == body["record_id"] and record.request_id == "REQ-1"
    assert record.prefill["subject_name"] == "Zoë Ångström-Nørgaard"
    assert record.prefill["decided_by"] == "Siân O'Connor"
    assert record.prefill["requested_at"] == event["timestamp"]
    assert len(record.prefill_hash) == 64
    # intake stores the values, not the PDF: the first download makes it (and keeps it)
    assert not storage(app).exists(record.prefill_pdf_key)
    assert [(a.event, a.to_status, a.actor) for a in record.audit] == [
        ("created", "awaiting_completion", "host")]
    assert _count(db_session, WebhookEvent) == 1

    # the links work: the prefilled PDF downloads, the status answers
    dl = client.get(_path(body["form_pdf_url"]))
    assert dl.status_code == 200 and dl.data.startswith(b"%PDF-")
    assert dl.data == storage(app).get(record.prefill_pdf_key)
    assert "attachment" in dl.headers["Content-Disposition"]
    st = client.get(_path(body["status_url"]))
    assert st.status_code == 200
    assert st.get_json() == {"record_id": body["record_id"], "status": "awaiting_completion",
                             "schema_version": 2,
                             "missing": st.get_json()["missing"], "due_at": body["due_at"],
                             "completed_at": None, "purged_at": None}


def test_same_webhook_id_again_is_200_same_body(client, tenant, signed_post, sample_event,
                                                db_session):
    event = sample_event()
    first = signed_post(tenant, event, webhook_id="msg_same")
    again = signed_post(tenant, event, webhook_id="msg_same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert same_answer(again.get_json(), first.get_json())
    assert status_record_id(client, again.json) == first.json["record_id"]
    assert _count(db_session, Record) == 1
    assert _count(db_session, AuditEntry) == 1
    assert _count(db_session, WebhookEvent) == 1


def test_new_webhook_id_same_request_is_200_same_body(client, tenant, signed_post, sample_event,
                                                       db_session):
    first = signed_post(tenant, sample_event(request_id="REQ-9"), webhook_id="msg_1")
    second = signed_post(tenant, sample_event(request_id="REQ-9"), webhook_id="msg_2")
    third = signed_post(tenant, sample_event(request_id="REQ-9"), webhook_id="msg_2")
    assert (first.status_code, second.status_code, third.status_code) == (201, 200, 200)
    assert same_answer(second.json, first.json) and same_answer(third.json, first.json)
    assert {status_record_id(client, b.json) for b in (second, third)} == {first.json["record_id"]}
    assert _count(db_session, Record) == 1
    assert _count(db_session, WebhookEvent) == 2


def test_a_repeat_gets_fresh_links_to_the_record_though_no_row_keeps_them(
        client, tenant, signed_post, sample_event, db_session, monkeypatch):
    """Stored answers hold no links (bearer credentials); a repeat an hour later gets links
    signed then, which open the same record."""
    import itsdangerous

    from sharewise.plugin import links

    earlier = int(time.time()) - 3600  # the first answer's links were signed an hour ago
    monkeypatch.setattr(itsdangerous.TimestampSigner, "get_timestamp", lambda self: earlier)
    first = signed_post(tenant, sample_event(request_id="REQ-L"), webhook_id="msg_a")
    monkeypatch.undo()
    same_id = signed_post(tenant, sample_event(request_id="REQ-L"), webhook_id="msg_a")
    new_id = signed_post(tenant, sample_event(request_id="REQ-L"), webhook_id="msg_b")
    assert (first.status_code, same_id.status_code, new_id.status_code) == (201, 200, 200)
    assert same_answer(same_id.json, first.json) and same_answer(new_id.json, first.json)
    assert same_id.json["status_url"] != first.json["status_url"]  # signed an hour later
    for body in (first.json, same_id.json, new_id.json):
        assert status_record_id(client, body) == first.json["record_id"]
    stored = db_session.scalars(select(WebhookEvent.response_body)).all()
    assert len(stored) == 2
    for body in stored:
        assert not set(body) & set(links.URL_KEYS.values())
        assert "http" not in json.dumps(body) and body["record_id"] == first.json["record_id"]


def test_after_a_link_key_rotation_a_repeat_gets_links_that_open(app, client, tenant,
                                                                 signed_post, sample_event):
    first = signed_post(tenant, sample_event(request_id="REQ-R"), webhook_id="msg_r").json
    app.config["SECRET_KEYS"] = ["rotated-key", "test-link-key"]
    again = signed_post(tenant, sample_event(request_id="REQ-R"), webhook_id="msg_r").json
    assert again["record_id"] == first["record_id"]
    assert again["status_url"] != first["status_url"]  # signed with the new first key
    for body in (first, again):
        assert client.get(_path(body["status_url"])).json["record_id"] == first["record_id"]


@pytest.mark.parametrize("old_links", [
    {"form_url": "http://old.example/form/t", "form_pdf_url": "http://old.example/p",
     "upload_url": "http://old.example/u", "status_url": "http://old.example/s"},
    {"links_issued_at": 1764000000},
])
def test_an_answer_stored_by_an_older_release_is_repeated_with_fresh_links(
        app, client, tenant, signed_post, sample_event, old_links):
    """Rows written by older releases (links stored whole, or the second they were issued
    at) still answer repeats: the stored answer with links signed now."""
    from sharewise.plugin.db import session_scope

    created = signed_post(tenant, sample_event(request_id="REQ-OLD"), webhook_id="msg_new").json
    old = {"record_id": created["record_id"], "status": "awaiting_completion", **old_links,
           "due_at": "2026-12-01T09:30:00Z"}
    with app.app_context(), session_scope() as session:
        session.add(WebhookEvent(tenant=tenant.slug, webhook_id="msg_old",
                                 event_type="share.requested", response_status=201,
                                 response_body=old))
    again = signed_post(tenant, sample_event(request_id="REQ-OLD"), webhook_id="msg_old")
    assert again.status_code == 200
    assert list(again.json) == ["record_id", "status", "form_url", "form_pdf_url",
                                "upload_url", "status_url", "due_at"]
    assert again.json["due_at"] == "2026-12-01T09:30:00Z"
    assert status_record_id(client, again.json) == created["record_id"]


@pytest.mark.parametrize("event_type, stored", [
    ("share.requested", {"links_issued_at": 1764000000}),
    ("share.requested", {"links_issued_at": 1764000000, "record_id": 7}),
    ("share.cancelled", {"record_id": "SR-1", "status": "cancelled"}),
    ("share.form_submitted", {"record_id": "SR-1", "status": "complete", "version": 2}),
])
def test_a_stored_answer_without_links_to_make_is_repeated_as_stored(event_type, stored):
    from sharewise.plugin.webhooks.services import answer_body

    assert answer_body(event_type, stored, "northshire") == stored


def test_same_request_id_in_two_tenants_are_two_records(tenant, other_tenant, signed_post,
                                                        sample_event, db_session):
    a = signed_post(tenant, sample_event(request_id="REQ-X"))
    b = signed_post(other_tenant, sample_event(request_id="REQ-X"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.get_json()["record_id"] != b.get_json()["record_id"]
    assert _count(db_session, Record) == 2


def test_event_due_at_is_kept(tenant, signed_post, sample_event):
    resp = signed_post(tenant, sample_event(due_at="2026-12-01T09:30:00+00:00"))
    assert resp.status_code == 201
    assert resp.get_json()["due_at"] == "2026-12-01T09:30:00Z"


def test_font_warnings_are_returned(tenant, signed_post, sample_event, db_session):
    event = sample_event()
    event["data"]["purpose"] = "Strategy meeting 会议 notes"  # not in DejaVu Sans
    resp = signed_post(tenant, event)
    assert resp.status_code == 201, resp.get_json()
    warnings = resp.get_json()["warnings"]
    assert warnings and all("会议" not in w for w in warnings)
    assert any("purpose" in w for w in warnings)


# ------------------------------------------------------------------ 401


def test_missing_signature_headers(client, tenant, sample_event):
    resp = client.post(f"/webhooks/{tenant.slug}", json=sample_event())
    assert resp.status_code == 401 and resp.mimetype == PROBLEM


@pytest.mark.parametrize("case", ["wrong_secret", "other_tenant_secret", "tampered", "old",
                                  "future", "bad_ts", "no_v1", "garbage_sig"])
def test_bad_signatures(client, tenant, other_tenant, signed_post, sample_event, db_session,
                        case):
    event = sample_event()
    if case == "wrong_secret":
        resp = signed_post(tenant, event, secret=generate_secret())
    elif case == "other_tenant_secret":
        resp = signed_post(tenant, event, secret=other_tenant.webhook_secrets[0])
    elif case == "tampered":
        body = json.dumps(event).encode()
        ts = int(time.time())
        headers = {"webhook-id": "m", "webhook-timestamp": str(ts),
                   "webhook-signature": sign(tenant.webhook_secrets[0], "m", ts, body)}
        resp = client.post(f"/webhooks/{tenant.slug}", data=body.replace(b"REQ", b"RQX"),
                           headers=headers)
    elif case == "old":
        resp = signed_post(tenant, event, timestamp=int(time.time()) - 301)
    elif case == "future":
        resp = signed_post(tenant, event, timestamp=int(time.time()) + 360)  # margin: the
        # test may take a second or more to reach verification on a loaded machine
    elif case == "bad_ts":
        resp = signed_post(tenant, event, headers={"webhook-timestamp": "yesterday"})
    elif case == "no_v1":
        resp = signed_post(tenant, event, headers={"webhook-signature": "v2,abc"})
    else:
        resp = signed_post(tenant, event, headers={"webhook-signature": "v1,!!!! v1,"})
    assert resp.status_code == 401, resp.get_json()
    assert resp.mimetype == PROBLEM
    assert resp.get_json()["type"] == "urn:sharewise:problem:invalid-signature"
    assert _count(db_session, Record) == 0


def test_secret_rotation_two_secrets_two_signatures(app, app_config, client, sample_event,
                                                    tmp_path):
    old, new, unrelated = generate_secret(), generate_secret(), generate_secret()
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(f'[tenants.northshire]\nwebhook_secrets = ["{new}", "{old}"]\n')
    app.extensions["sharewise.tenants"].__init__(tenants)
    body = json.dumps(sample_event()).encode()
    ts = int(time.time())

    def post(*secrets, webhook_id):
        sigs = " ".join(sign(s, webhook_id, ts, body) for s in secrets)
        return client.post("/webhooks/northshire", data=body, headers={
            "webhook-id": webhook_id, "webhook-timestamp": str(ts), "webhook-signature": sigs})

    assert post(old, webhook_id="m1").status_code == 201        # host still on the old secret
    assert post(unrelated, new, webhook_id="m2").status_code == 200  # second signature matches
    assert post(new, webhook_id="m3").status_code == 200
    assert post(unrelated, webhook_id="m4").status_code == 401


# ------------------------------------------------------------------ 404 / 405 / 413


def test_unknown_tenant(signed_post, sample_event, db_session):
    resp = signed_post("nowhere", sample_event(), secret=generate_secret())
    assert resp.status_code == 404 and resp.mimetype == PROBLEM
    assert resp.get_json()["type"] == "urn:sharewise:problem:unknown-tenant"


@pytest.mark.parametrize("event_type,extra", [
    ("share.cancelled", {"reason": "withdrawn"}),
    ("share.form_submitted", {"pdf_base64": base64.b64encode(b"%PDF-1.7").decode()}),
])
def test_unknown_request_id(tenant, signed_post, event_type, extra):
    event = {"type": event_type, "timestamp": "2026-11-24T10:00:00Z",
             "data": {"request_id": "NOPE", **extra}}
    resp = signed_post(tenant, event)
    assert resp.status_code == 404, resp.get_json()
    assert resp.get_json()["type"] == "urn:sharewise:problem:unknown-request"


def test_wrong_method_and_unknown_path(client):
    resp = client.get("/webhooks/northshire")
    assert resp.status_code == 405 and resp.mimetype == PROBLEM and "POST" in resp.headers["Allow"]
    resp = client.post("/webhooks/northshire/extra")
    assert resp.status_code == 404 and resp.mimetype == PROBLEM


@pytest.fixture
def small_limit(app_config):
    app_config["MAX_BODY_BYTES"] = 2000
    return 2000


def test_413_by_content_length_before_reading(small_limit, client, tenant, signed_post,
                                              sample_event, db_session):
    event = sample_event()
    event["data"]["padding"] = "x" * 3000
    resp = signed_post(tenant, event)
    assert resp.status_code == 413 and resp.mimetype == PROBLEM


def test_413_without_content_length(small_limit, client, tenant):
    resp = client.post(f"/webhooks/{tenant.slug}", input_stream=io.BytesIO(b"{" * 5000),
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == 413 and resp.mimetype == PROBLEM


def test_413_default_limit_is_12_mb(app):
    assert app.config["MAX_BODY_BYTES"] == 12 * 1024 * 1024


# ------------------------------------------------------------------ 422


def test_not_json(tenant, signed_post, db_session):
    resp = signed_post(tenant, b"\xff\xfe not json")
    assert resp.status_code == 422 and resp.mimetype == PROBLEM
    assert resp.get_json()["errors"] == [
        {"field": "(body)", "message": "The body is not valid JSON."}]


@pytest.mark.parametrize("doc", [[], "text", 42, None, {}])
def test_json_but_not_an_event(tenant, signed_post, doc):
    resp = signed_post(tenant, json.dumps(doc).encode())
    assert resp.status_code == 422 and resp.mimetype == PROBLEM
    assert resp.get_json()["errors"]


def test_unknown_event_type(tenant, signed_post, sample_event):
    event = sample_event()
    event["type"] = "share.exploded"
    resp = signed_post(tenant, event)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.get_json()["errors"]] == ["type"]


def test_schema_errors_list_each_field(tenant, signed_post, sample_event, db_session, app):
    event = sample_event()
    data = event["data"]
    del data["subject"]["name"]
    data["practitioner"]["email"] = "not-an-email"
    data["practitioner"]["manager"]["email"] = "Dafydd Llŷr <no>"
    data["direction"] = "sideways"
    data["purpose"] = "p" * 2001
    data["urgency"] = "whenever"
    data["due_at"] = "next tuesday"
    del data["recipient"]
    resp = signed_post(tenant, event)
    assert resp.status_code == 422 and resp.mimetype == PROBLEM
    problem = resp.get_json()
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {
        "data.subject.name", "data.practitioner.email", "data.practitioner.manager.email",
        "data.direction", "data.purpose", "data.urgency", "data.due_at", "data.recipient",
    }
    text = json.dumps(problem, ensure_ascii=False)
    assert "Dafydd" not in text and "not-an-email" not in text and "sideways" not in text
    assert _count(db_session, Record) == 0
    assert not list(storage(app).inner.root.rglob("*.pdf"))


def test_bad_timestamp_in_envelope(tenant, signed_post, sample_event):
    event = sample_event()
    event["timestamp"] = "2026-11-24T10:00:00"  # no offset
    resp = signed_post(tenant, event)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.get_json()["errors"]] == ["timestamp"]


def test_bad_base64_in_form_submitted(tenant, signed_post, sample_event):
    assert signed_post(tenant, sample_event(request_id="REQ-B")).status_code == 201
    event = {"type": "share.form_submitted", "timestamp": "2026-11-24T10:00:00Z",
             "data": {"request_id": "REQ-B", "pdf_base64": "***"}}
    resp = signed_post(tenant, event)
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "data.pdf_base64"


# ------------------------------------------------------------------ never a 500

GARBAGE = [
    b"",
    b"\x00" * 100,
    b'{"type": "share.requested", "timestamp": "2026-11-24T10:00:00Z", "data": []}',
    b'{"type": "share.requested", "timestamp": 5, "data": {"request_id": {"a": 1}}}',
    b'{"type": ["share.requested"], "timestamp": null, "data": null}',
    b'{"type": "share.requested", "timestamp": "2026-11-24T10:00:00Z", "data": '
    b'{"request_id": "r", "case": "x", "subject": [], "practitioner": {"manager": 3}}}',
    b'{"type": "share.cancelled", "timestamp": "2026-11-24T10:00:00Z", "data": {"request_id": ""}}',
    b'{"type": "share.requested", "timestamp": "2026-11-24T10:00:00Z", "data": {"a": 1e999}}',
    b"[" * 5000 + b"]" * 5000,
    "{\"type\": \"share.requested\", \"x\": \"\ud800\"}".encode("utf-8", "surrogatepass"),
]


@pytest.mark.parametrize("body", GARBAGE)
def test_garbage_bodies_never_500(tenant, signed_post, body):
    resp = signed_post(tenant, body)
    assert resp.status_code == 422, resp.data
    assert resp.mimetype == PROBLEM
    assert "Traceback" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("headers", [
    {"webhook-id": "x" * 10000},
    {"webhook-timestamp": "9" * 400},
    {"webhook-timestamp": "-1"},
    {"webhook-signature": "v1," + "A" * 100000},
    {"Content-Type": "multipart/form-data; boundary=zz"},
    {"Content-Length": "not-a-number"},
])
def test_garbage_headers_never_500(tenant, signed_post, sample_event, headers):
    resp = signed_post(tenant, sample_event(), headers=headers)
    # the body is read raw and verified: a misleading Content-Type does not matter
    assert resp.status_code in (201, 400, 401, 413, 422), resp.data
    assert resp.mimetype == (PROBLEM if resp.status_code >= 400 else "application/json")


def test_unexpected_error_is_a_bare_problem(app, client, tenant, signed_post, sample_event,
                                            monkeypatch, caplog):
    from sharewise.plugin.webhooks import services

    def boom(*a, **k):
        raise RuntimeError("Zoë Ångström secret detail")

    monkeypatch.setattr(services, "create_from_event", boom)
    resp = signed_post(tenant, sample_event())
    assert resp.status_code == 500 and resp.mimetype == PROBLEM
    assert resp.get_json() == {"type": "urn:sharewise:problem:internal-error",
                               "title": "Internal Server Error", "status": 500}
    assert "Zoë" not in caplog.text and "RuntimeError" in caplog.text


def test_values_refused_by_the_form_library_are_422(tenant, signed_post, sample_event,
                                                    db_session, app, monkeypatch):
    import sharewise.forms.prefill
    import sharewise.plugin.records.prefill

    def refuse(values, **_kwargs):
        raise sharewise.forms.prefill.FormDataError(
            {"subject_name": ["Not a value the form can hold."]})

    monkeypatch.setattr(sharewise.plugin.records.prefill, "normalise", refuse)
    resp = signed_post(tenant, sample_event())
    assert resp.status_code == 422 and resp.mimetype == PROBLEM
    assert resp.get_json()["errors"] == [
        {"field": "prefill.subject_name", "message": "Not a value the form can hold."}]
    assert _count(db_session, Record) == 0
    assert not list(storage(app).inner.root.rglob("*.pdf"))


@pytest.mark.parametrize(
    "due_at",
    ["9999-12-31T23:59:59Z", "9999-12-30T00:00:00Z", "0001-01-01T00:00:00Z",
     "0001-01-01T00:00:00+14:00", "1999-12-31T23:59:59Z"],
)
def test_implausible_due_at_is_a_422_not_a_500(tenant, signed_post, sample_event, due_at):
    resp = signed_post(tenant, sample_event(due_at=due_at))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert any(e["field"].endswith("due_at") for e in resp.get_json()["errors"])


def test_one_log_line_per_event_with_its_outcome(client, tenant, signed_post, sample_event,
                                                  caplog):
    import logging

    event = sample_event(request_id="LOG-1")
    with caplog.at_level(logging.INFO):
        first = signed_post(tenant, event, webhook_id="msg_log_1")
        again = signed_post(tenant, event, webhook_id="msg_log_2")
        gone = signed_post(tenant, {"type": "share.cancelled", "timestamp": event["timestamp"],
                                    "data": {"request_id": "NOPE"}}, webhook_id="msg_log_3")
    assert (first.status_code, again.status_code, gone.status_code) == (201, 200, 404)
    lines = [r.getMessage() for r in caplog.records if r.name == "sharewise.plugin.webhooks.views"]
    record_id = first.get_json()["record_id"]
    assert lines == [
        f"webhook 'msg_log_1' for {tenant.slug}: share.requested -> 201 record {record_id}",
        f"webhook 'msg_log_2' for {tenant.slug}: share.requested -> 200 record {record_id}",
        f"webhook 'msg_log_3' for {tenant.slug}: share.cancelled -> 404 unknown-request",
    ]
    assert "LOG-1" not in caplog.text  # the host's ids and the people stay out of the log


@pytest.mark.parametrize("where", [("case", "reference"), ("practitioner", "id"), ("request_id",),
                                   ("subject", "name"), ("purpose",),
                                   ("practitioner", "manager", "name")])
def test_unpaired_surrogate_escapes_are_refused_by_field(tenant, signed_post, sample_event, where,
                                                        db_session):
    """``"\\ud800"`` is valid JSON but no character: in a value the event keeps it is a 422
    naming the field, not a 500 from the database; nothing is stored."""
    event = sample_event()
    node = event["data"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "ab\ud800cd"
    resp = signed_post(tenant, json.dumps(event).encode())  # ensure_ascii: sent as \ud800
    assert resp.status_code == 422, resp.data
    body = resp.get_json()
    assert body["errors"] == [{"field": "data." + ".".join(where), "message": body["errors"][0][
        "message"]}]
    assert "surrogate" in body["errors"][0]["message"] and "\ud800" not in resp.get_data(
        as_text=True)
    assert db_session.scalar(select(func.count()).select_from(Record)) == 0


def test_unpaired_surrogates_where_the_event_keeps_nothing_are_ignored(tenant, signed_post,
                                                                      sample_event):
    """Unknown keys are dropped (hosts may send more), whatever they hold."""
    event = sample_event()
    event["data"]["extra"] = {"note": "half an emoji \ud83d", "\udc00key": 1}
    event["data"]["subject"]["nickname"] = "\udfff"
    event["also"] = ["\ud800"]
    resp = signed_post(tenant, json.dumps(event).encode())
    assert resp.status_code == 201, resp.data


def test_many_unpaired_surrogates_are_listed_once_each_and_at_most_twenty(tenant, signed_post,
                                                                          sample_event):
    event = sample_event()
    data = event["data"]
    for key in ("purpose", "information_requested"):
        data[key] = "\ud800" * 1000
    data["subject"]["name"] = "\udbff x"
    resp = signed_post(tenant, json.dumps(event).encode())
    assert resp.status_code == 422
    fields = [e["field"] for e in resp.get_json()["errors"]]
    assert sorted(fields) == ["data.information_requested", "data.purpose",
                              "data.subject.name"]
    from sharewise.plugin.webhooks.views import MAX_LISTED, lone_surrogates

    many = {"k": [f"\ud800{i}" for i in range(100)], **{f"f{i}": "\udc00" for i in range(50)}}
    assert len(lone_surrogates(many, "data")) == MAX_LISTED
    deep: object = "\ud800"
    for _ in range(5000):  # no recursion limit to hit
        deep = [deep]
    assert lone_surrogates({"a": deep}, "data") == ["data.a"]


def test_paired_surrogate_escapes_are_one_character(tenant, signed_post, sample_event):
    event = sample_event()
    event["data"]["purpose"] = "Strategy discussion \U0001F4CB"  # sent as \ud83d\udccb
    body = json.dumps(event).encode()
    assert b"\\ud83d\\udccb" in body
    resp = signed_post(tenant, body)
    assert resp.status_code == 201, resp.data


def test_bodies_in_utf16_or_with_a_bom_are_read_and_bytes_that_are_no_characters_are_not(
        tenant, signed_post, sample_event):
    utf16 = json.dumps(sample_event(), ensure_ascii=False).encode("utf-16")
    assert signed_post(tenant, utf16).status_code == 201
    bom = b"\xef\xbb\xbf" + json.dumps(sample_event()).encode()
    assert signed_post(tenant, bom).status_code == 201
    # a surrogate encoded as bytes is not UTF-8 at all (json.loads would have let it through)
    raw = json.dumps(sample_event(purpose="PURPOSE")).encode().replace(
        b"PURPOSE", "x\ud800".encode("utf-8", "surrogatepass"))
    resp = signed_post(tenant, raw)
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [{"field": "(body)",
                                          "message": "The body is not valid JSON."}]
