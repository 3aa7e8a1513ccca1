"""The reference host itself: it must catch what a real host would (bad signatures, wrong path,
a PDF that does not match its hash), or the delivery tests would prove nothing."""

import base64
import hashlib
import json

import httpx

from sharewise.plugin.outbox.hostsim import HostSimulator, describe
from sharewise.plugin.signing import generate_secret, sign_headers


def test_unsigned_tampered_and_misaddressed_posts_are_not_stored():
    secret = generate_secret()
    with HostSimulator(secret) as host:
        body = json.dumps({"type": "share.record_overdue", "data": {}}).encode()
        headers = sign_headers(secret, "msg_1", body)
        assert httpx.post(host.url, content=body).status_code == 401
        assert httpx.post(host.url, content=body + b" ", headers=headers).status_code == 401
        stale = sign_headers(secret, "msg_1", body, timestamp=1_000_000_000)
        assert httpx.post(host.url, content=body, headers=stale).status_code == 401
        wrong_path = host.url.replace("/callback", "/other")
        assert httpx.post(wrong_path, content=body, headers=headers).status_code == 404
        assert host.records == {}
        assert httpx.post(host.url, content=body, headers=headers).status_code == 200
        assert list(host.records) == ["msg_1"] and host.arrivals == 1


def test_describe_checks_the_pdf_against_its_announced_hash():
    pdf = b"%PDF-1.7 final record"
    good = {"type": "share.record_completed",
            "data": {"record_id": "SR-1", "status": "complete", "fields": {"a": 1},
                     "pdf": {"sha256": hashlib.sha256(pdf).hexdigest(), "size": len(pdf),
                             "base64": base64.b64encode(pdf).decode()}}}
    assert "(matches the announced hash)" in describe(good)
    good["data"]["pdf"]["base64"] = base64.b64encode(pdf + b"x").decode()
    assert "DOES NOT MATCH" in describe(good)
