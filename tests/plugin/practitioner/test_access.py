"""Access to a record (issue 18): every view, download and upload is an audit entry with a
keyed hash of the client's address (never the address), the proxies to believe are a setting,
and ``sharewise links revoke`` withdraws a record's practitioner links at once."""

from __future__ import annotations

import io
import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from sharewise.plugin.access import access_key, client_hash
from sharewise.plugin.db import session_scope
from sharewise.plugin.records.chain import first_break
from sharewise.plugin.records.models import AuditEntry
from tests.plugin.uploads.journey import (
    create_record,
    filled_pdf,
    partial_answers,
    path_of,
    record_row,
    versions,
)

VISITOR = "203.0.113.77"


@pytest.fixture
def made(app, signed_post, sample_event):
    return create_record(signed_post, sample_event)


def _trail(app, public_id):
    record = record_row(app, public_id)
    with session_scope(app, readonly=True) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.record_id == record.id)
                              .order_by(AuditEntry.id)))


def _upload(app, client, made, url_key="form_url", **kw):
    pdf = filled_pdf(app, made["record_id"], partial_answers())
    return client.post(path_of(made[url_key]),
                       data={"file": (io.BytesIO(pdf), "form.pdf", "application/pdf")}, **kw)


def test_views_downloads_and_uploads_are_audited_with_a_keyed_client_hash(app, client, made):
    visitor = {"REMOTE_ADDR": VISITOR}
    assert client.get(path_of(made["form_url"]), environ_base=visitor).status_code == 200
    assert client.get(path_of(made["form_pdf_url"]), environ_base=visitor).status_code == 200
    assert _upload(app, client, made, environ_base=visitor).status_code == 200
    again = client.get(path_of(made["form_pdf_url"]), environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert again.status_code == 200
    trail = _trail(app, made["record_id"])
    got = [(e.event, e.reason) for e in trail[1:]]
    assert got == [("viewed", "the record's page"),
                   ("downloaded", "the prefilled form (PDF)"),
                   ("upload_incomplete", got[2][1]),
                   ("downloaded", "the form as uploaded (upload 1)")]
    mine = client_hash(VISITOR, access_key(app))
    assert [e.client for e in trail[1:4]] == [mine] * 3
    assert trail[4].client not in (None, mine)
    assert trail[0].client == client_hash("127.0.0.1", access_key(app))  # the host's event
    assert first_break(trail) is None
    # the address itself is nowhere in the database
    engine = app.extensions["sharewise.db"]["engine"]
    with engine.connect() as conn:
        for table in ("audit_entries", "records", "upload_versions", "webhook_events"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 - fixed names
            assert VISITOR not in repr(rows), table


def test_the_hash_is_keyed():
    assert client_hash(VISITOR, b"k1") != client_hash(VISITOR, b"k2")
    assert VISITOR not in client_hash(VISITOR, b"k1") and client_hash(None, b"k1") is None


def test_forwarded_addresses_count_only_behind_trusted_proxies(app, app_config, made):
    from sharewise.plugin.app import create_app

    forwarded = {"X-Forwarded-For": VISITOR}
    for proxies, expected in ((0, "127.0.0.1"), (1, VISITOR)):
        served = create_app({**app_config, "TRUSTED_PROXIES": proxies})  # the same database
        assert served.test_client().get(path_of(made["form_url"]),
                                        headers=forwarded).status_code == 200
        assert _trail(app, made["record_id"])[-1].client == client_hash(expected,
                                                                        access_key(app))


def _cli(app, monkeypatch, *args):
    from sharewise.plugin.cli import main

    for key in ("DATA_DIR", "TENANTS", "DATABASE_URL", "BASE_URL", "STORAGE_URL",
                "BROKER_URL"):
        monkeypatch.setenv(f"SHAREWISE_{key}", str(app.config[key]))
    monkeypatch.setenv("SHAREWISE_SECRET_KEYS", ",".join(app.config["SECRET_KEYS"]))
    monkeypatch.setenv("SHAREWISE_MIGRATE_ON_START", "false")
    return CliRunner().invoke(main, list(args))


def test_revoked_links_stop_at_once_and_fresh_ones_work(app, client, made, monkeypatch):
    assert client.get(path_of(made["form_url"])).status_code == 200
    out = _cli(app, monkeypatch, "links", "revoke", made["record_id"], "--reason",
               "sent to the wrong team")
    assert out.exit_code == 0, out.output
    assert "withdrawn" in out.output
    page = client.get(path_of(made["form_url"]))
    assert page.status_code == 403 and "This link has been withdrawn" in page.get_data(True)
    assert client.get(path_of(made["form_pdf_url"])).status_code == 403
    refused = _upload(app, client, made, url_key="upload_url",
                      headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.get_json()["type"].endswith("link-revoked")
    assert versions(app, made["record_id"]) == []  # nothing stored from a withdrawn link
    assert client.get(path_of(made["status_url"])).status_code == 200  # the host's link
    assert _trail(app, made["record_id"])[-1].event == "links_revoked"
    assert _trail(app, made["record_id"])[-1].reason == "sent to the wrong team"

    fresh = _cli(app, monkeypatch, "links", made["record_id"])  # the old command still works
    assert fresh.exit_code == 0, fresh.output
    urls = dict(re.findall(r"^\s+(\w+_url)\s+(\S+)$", fresh.output, re.M))
    assert client.get(path_of(urls["form_url"])).status_code == 200
    assert _upload(app, client, {**made, **urls}).status_code == 200


def test_revoking_an_unknown_record(app, monkeypatch):
    out = _cli(app, monkeypatch, "links", "revoke", "SR-NOSUCHRECORD")
    assert out.exit_code == 1 and "no record 'SR-NOSUCHRECORD'" in out.output


def test_the_links_command_still_takes_its_options_first(app, made, monkeypatch):
    out = _cli(app, monkeypatch, "links", "--json", made["record_id"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["record_id"] == made["record_id"]
