"""The demo's host endpoint on the service: verifies, stores once, and is off unless pointed at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sharewise.plugin.signing import generate_secret, sign_headers

SECRET = generate_secret()


@pytest.fixture
def app_config(app_config, tmp_path):
    path = tmp_path / "tenants-demo.toml"
    path.write_text(
        "[tenants.demo]\n"
        'name = "Demo County Council"\n'
        f'webhook_secret = "{generate_secret()}"\n'
        'callback_url = "http://sharewise.test/demo-host/callback"\n'
        f'callback_secret = "{SECRET}"\n'
    )
    app_config["TENANTS"] = str(path)
    return app_config


def post(client, body: dict, secret: str = SECRET, msg_id: str = "msg_demo1"):
    raw = json.dumps(body).encode()
    headers = sign_headers(secret, msg_id, raw)
    headers["content-type"] = "application/json"
    return client.post("/demo-host/callback", data=raw, headers=headers)


BODY = {"type": "share.record_overdue", "timestamp": "2026-11-24T12:00:00Z",
        "data": {"record_id": "SR-X", "request_id": "REQ-1", "due_at": "2026-11-24T17:00:00Z",
                 "escalated_to": "manager"}}


def test_demo_host_verifies_stores_once_and_prints(app, client, capsys):
    first = post(client, BODY)
    assert first.status_code == 200 and first.get_json() == {"ok": True}
    again = post(client, BODY)
    assert again.get_json() == {"ok": True, "duplicate": True}
    stored = list((Path(app.config["DATA_DIR"]) / "demo-host").iterdir())
    assert [p.name for p in stored] == ["msg_demo1.json"]
    assert json.loads(stored[0].read_text()) == BODY
    out = capsys.readouterr().out
    assert "demo host stored share.record_overdue for record SR-X" in out
    assert "already stored" in out


def test_demo_host_rejects_a_bad_signature(client):
    assert post(client, BODY, secret=generate_secret()).status_code == 401


def test_demo_host_is_off_when_no_tenant_points_at_it(app, client, tmp_path):
    Path(app.config["TENANTS_IN_USE"]).write_text(
        "[tenants.real]\n"
        f'webhook_secret = "{generate_secret()}"\n'
        'callback_url = "https://case.example/api/sharewise"\n'
        f'callback_secret = "{SECRET}"\n'
    )
    assert post(client, BODY).status_code == 404


@pytest.mark.parametrize("data", [
    [1, 2],
    {"record_id": "SR-Y", "pdf": {"base64": 5, "sha256": 3, "size": "x"}},
    {"record_id": "SR-Y", "pdf": {"base64": "not*base64", "sha256": "0", "size": 1}},
    {"record_id": "SR-Y", "pdf": {"base64": "é"}},
], ids=["data-list", "pdf-number", "pdf-not-base64", "pdf-non-ascii"])
def test_demo_host_odd_signed_body_is_stored_and_summarised_not_a_500(app, client, capsys,
                                                                       data):
    body = {"type": "share.record_completed", "timestamp": "2026-11-24T12:00:00Z",
            "data": data}
    resp = post(client, body, msg_id="msg_odd")
    assert resp.status_code == 200 and resp.get_json() == {"ok": True}
    stored = Path(app.config["DATA_DIR"]) / "demo-host" / "msg_odd.json"
    assert json.loads(stored.read_text()) == body
    out = capsys.readouterr().out
    assert "demo host stored share.record_completed" in out
    if isinstance(data, dict):
        assert "pdf: not readable" in out
