"""Sealed personal fields (issue 18): a record's prefill, an upload's values and a post-back's
body are encrypted in their columns and bound to their record; rows written before sealing
still read, and a rotation seals them; the code above the models never sees ciphertext."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from sharewise.plugin.crypto import DecryptionError
from sharewise.plugin.db import session_scope
from sharewise.plugin.records.models import Record
from tests.plugin.uploads.journey import (
    complete_answers,
    create_record,
    filled_pdf,
    path_of,
    record_row,
    versions,
)

NAME = "Zebedee Quixote-Marchbanks"


@pytest.fixture
def completed(app, client, signed_post, sample_event):
    made = create_record(signed_post, sample_event, subject={
        "name": NAME, "date_of_birth": "2014-03-09", "type": "child"})
    pdf = filled_pdf(app, made["record_id"], complete_answers())
    resp = client.post(path_of(made["upload_url"]), data=pdf,
                       headers={"Content-Type": "application/pdf",
                                "Accept": "application/json"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "complete"
    return made


def _raw(app, sql):
    with app.extensions["sharewise.db"]["engine"].connect() as conn:
        return [r[0] for r in conn.execute(text(sql))]


def test_personal_fields_are_sealed_in_their_columns(app, completed):
    for sql in ("SELECT prefill FROM records", 'SELECT "values" FROM upload_versions',
                "SELECT payload FROM deliveries"):
        stored = _raw(app, sql)
        assert stored and all(s.startswith("sealed:") for s in stored), sql
        assert not any("Quixote" in s or "subject" in s for s in stored), sql
    record = record_row(app, completed["record_id"])
    assert record.prefill["subject_name"] == NAME  # the model layer opens them
    assert versions(app, completed["record_id"])[0].values["consent"] == "given"


def test_a_sealed_value_copied_to_another_record_does_not_open(app, signed_post, sample_event,
                                                              completed):
    other = create_record(signed_post, sample_event, request_id="REQ-OTHER")
    engine = app.extensions["sharewise.db"]["engine"]
    with engine.begin() as conn:
        sealed = conn.execute(text("SELECT prefill FROM records WHERE public_id = :p"),
                              {"p": completed["record_id"]}).scalar_one()
        conn.execute(text("UPDATE records SET prefill = :s WHERE public_id = :p"),
                     {"s": sealed, "p": other["record_id"]})
    with pytest.raises(DecryptionError), session_scope(app) as s:
        s.scalar(select(Record).where(Record.public_id == other["record_id"]))


def test_rows_from_before_sealing_read_and_a_rotation_seals_them(app, completed):
    from sharewise.plugin.rotation import rotate

    engine = app.extensions["sharewise.db"]["engine"]
    plain = {"subject_name": NAME, "case_reference": "CASE-OLD"}
    with engine.begin() as conn:
        conn.execute(text("UPDATE records SET prefill = :v"), {"v": json.dumps(plain)})
    assert record_row(app, completed["record_id"]).prefill == plain
    with app.app_context():
        result = rotate(app, batch=1)
    assert result.fields == 1 and result.rows >= 3  # the record; the rest were current
    assert _raw(app, "SELECT prefill FROM records")[0].startswith("sealed:")
    assert record_row(app, completed["record_id"]).prefill == plain
    with app.app_context():
        assert rotate(app).fields == 0


def test_the_hosts_request_id_is_sealed_and_found_by_its_keyed_hash(app, signed_post,
                                                                    sample_event, tenant):
    from sharewise.plugin.crypto import keyring
    from sharewise.plugin.records.models import request_hash, subject_hash

    made = create_record(signed_post, sample_event, request_id="REQ-SECRET-4711", subject={
        "name": "  ZOË  Ångström ", "date_of_birth": "2014-03-09", "type": "child"})
    stored = _raw(app, "SELECT request_id || ' ' || request_hash || ' ' || subject_hash "
                       "FROM records")[0]
    assert "4711" not in stored and "sealed:" in stored
    keys = keyring(app)
    row = record_row(app, made["record_id"])
    assert row.request_id == "REQ-SECRET-4711"
    assert row.request_hash == request_hash(keys, "northshire", "REQ-SECRET-4711")[0]
    assert row.subject_hash == subject_hash(keys, "zoë ångström", "2014-03-09")[0]
    again = signed_post(tenant, sample_event(request_id="REQ-SECRET-4711"))
    assert again.status_code == 200 and again.get_json()["record_id"] == made["record_id"]
    cancel = {"type": "share.cancelled", "timestamp": "2026-11-24T10:00:00Z",
              "data": {"request_id": "REQ-SECRET-4711", "reason": "withdrawn"}}
    assert signed_post(tenant, cancel).status_code == 200


def test_a_request_from_before_the_hashes_is_still_found_and_a_rotation_hashes_it(
        app, signed_post, sample_event, tenant):
    from sharewise.plugin.rotation import rotate

    made = create_record(signed_post, sample_event, request_id="REQ-LEGACY")
    with app.extensions["sharewise.db"]["engine"].begin() as conn:  # as migration 0009 left it
        conn.execute(text("UPDATE records SET request_id = '\"REQ-LEGACY\"', "
                          "request_hash = NULL"))
    again = signed_post(tenant, sample_event(request_id="REQ-LEGACY"))
    assert again.status_code == 200 and again.get_json()["record_id"] == made["record_id"]
    with app.app_context():
        rotate(app)
    row = record_row(app, made["record_id"])
    assert row.request_hash and row.request_id == "REQ-LEGACY"
    assert _raw(app, "SELECT request_id FROM records")[0].startswith("sealed:")
    cancel = {"type": "share.cancelled", "timestamp": "2026-11-24T10:00:00Z",
              "data": {"request_id": "REQ-LEGACY", "reason": "withdrawn"}}
    assert signed_post(tenant, cancel).status_code == 200


def test_during_a_rotation_a_repeated_request_is_still_a_duplicate(app_config):
    from sharewise.plugin.app import create_app
    from sharewise.plugin.crypto import generate_key
    from sharewise.plugin.demo import sample_event, signed_request
    from sharewise.plugin.tenants import get_tenant

    old, new = generate_key(), generate_key()

    def post(app, request_id):
        secret = get_tenant("northshire", app).webhook_secrets[0]
        body, headers = signed_request(secret, sample_event(request_id=request_id))
        return app.test_client().post("/webhooks/northshire", data=body, headers=headers)

    first = post(create_app({**app_config, "ENCRYPTION_KEYS": old}), "REQ-ROT")
    assert first.status_code == 201
    during = create_app({**app_config, "ENCRYPTION_KEYS": f"{new},{old}"})
    again = post(during, "REQ-ROT")  # stored under the old key's hash, found all the same
    assert again.status_code == 200
    assert again.get_json()["record_id"] == first.get_json()["record_id"]
    assert post(during, "REQ-NEW").status_code == 201
