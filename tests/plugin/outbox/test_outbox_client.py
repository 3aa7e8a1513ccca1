"""The signed client against the real host simulator: headers, verdicts, bounds."""

import base64
import json
import os
import socket
import time

import pytest

from sharewise.plugin.outbox.client import (
    AttemptOutcome,
    InvalidCallbackURL,
    Verdict,
    check_callback_url,
    classify,
    post_signed,
)
from sharewise.plugin.outbox.hostsim import HostSimulator


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def secret():
    return new_secret()


@pytest.fixture
def host(secret):
    with HostSimulator(secret) as sim:
        yield sim


BODY = json.dumps({"type": "share.record_overdue", "timestamp": "2026-11-24T12:00:00Z",
                   "data": {"record_id": "rec_1"}}).encode()


def send(host, secret, msg_id="msg_test1", **kw) -> AttemptOutcome:
    kw.setdefault("timeout", 2.0)
    return post_signed(host.url, secret=secret, msg_id=msg_id, body=BODY, **kw)


def test_success_is_signed_verifiably_and_stored_once(host, secret):
    out = send(host, secret)
    assert out.verdict is Verdict.SUCCESS and out.status_code == 200 and out.error is None
    assert out.duration_ms >= 0
    assert list(host.records) == ["msg_test1"]
    assert host.records["msg_test1"]["data"]["record_id"] == "rec_1"
    (req,) = host.requests
    assert req.verified and req.event_type == "share.record_overdue"
    assert abs(int(req.webhook_timestamp) - time.time()) < 5


def test_same_webhook_id_is_deduplicated_by_the_host(host, secret):
    assert send(host, secret).verdict is Verdict.SUCCESS
    assert send(host, secret).verdict is Verdict.SUCCESS
    assert len(host.requests) == 2 and len(host.records) == 1
    assert host.requests[1].duplicate


def test_wrong_secret_is_rejected_by_the_independent_verifier(host):
    out = send(host, new_secret())
    assert out.verdict is Verdict.FAILED and out.status_code == 401
    assert host.records == {} and not host.requests[0].verified


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(500, Verdict.RETRY), (503, Verdict.RETRY), (429, Verdict.RETRY), (400, Verdict.FAILED),
     (404, Verdict.FAILED), (410, Verdict.DISABLE)],
)
def test_status_codes_are_classified(host, secret, status, verdict):
    host.fail(1, status=status)
    out = send(host, secret)
    assert (out.verdict, out.status_code) == (verdict, status)
    assert host.records == {}


def test_429_retry_after_seconds_is_parsed(host, secret):
    host.fail(1, status=429, retry_after="42")
    out = send(host, secret)
    assert out.verdict is Verdict.RETRY and out.retry_after == 42


def test_503_retry_after_http_date_is_parsed(host, secret):
    from email.utils import formatdate

    host.fail(1, status=503, retry_after=formatdate(time.time() + 120, usegmt=True))
    out = send(host, secret)
    assert out.verdict is Verdict.RETRY and 110 <= out.retry_after <= 121


def test_timeout_is_retryable_and_bounded(host, secret):
    host.stall(1, seconds=1.2)
    started = time.monotonic()
    out = send(host, secret, timeout=0.5)
    # bounded, not fast: the verdict below proves the timeout cut the call short; the bound is
    # loose enough for a loaded 2-core CI machine
    assert time.monotonic() - started < 5
    assert out.verdict is Verdict.RETRY and out.error == "timeout" and out.status_code is None
    # the slow host did store it in the end; a retry with the same id is a duplicate to it
    assert host.wait_for_records(1, timeout=5)
    assert send(host, secret).verdict is Verdict.SUCCESS
    assert len(host.records) == 1 and host.requests[-1].duplicate


def test_offline_host_is_connection_refused_then_back(host, secret):
    host.go_offline()
    out = send(host, secret)
    assert out.verdict is Verdict.RETRY and out.error == "connect_error"
    host.come_back()
    assert send(host, secret).verdict is Verdict.SUCCESS


def test_redirect_is_not_followed(host, secret):
    with HostSimulator(secret) as other:
        host.redirect(other.url)
        out = send(host, secret)
        assert out.verdict is Verdict.FAILED and out.status_code == 302
        assert out.error == "redirect_not_followed"
        assert other.requests == []


def test_response_body_read_is_bounded(secret):
    """A host that streams an endless answer does not hold the client past its bounds."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    import threading

    def serve():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        try:
            chunk = b"x" * 8192
            while True:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        finally:
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    started = time.monotonic()
    out = post_signed(f"http://127.0.0.1:{port}/x", secret=secret, msg_id="msg_big",
                      body=BODY, timeout=2, max_response_bytes=100_000)
    # SUCCESS (not a timeout) shows the byte bound ended the read; the time is only bounded
    assert out.verdict is Verdict.SUCCESS
    assert time.monotonic() - started < 5
    srv.close()


@pytest.mark.parametrize("url", ["ftp://host/x", "file:///etc/passwd", "http:///nohost",
                                 "javascript:alert(1)", "gopher://x", "//host/path"])
def test_only_http_urls_are_called(url, secret):
    with pytest.raises(InvalidCallbackURL):
        check_callback_url(url)
    out = post_signed(url, secret=secret, msg_id="m", body=BODY)
    assert out.verdict is Verdict.FAILED and out.error == "invalid_url"


def test_classify_covers_the_ranges():
    assert classify(204) is Verdict.SUCCESS
    assert classify(301) is Verdict.FAILED
    assert classify(418) is Verdict.FAILED
    assert classify(599) is Verdict.RETRY


def test_no_log_line_carries_the_callback_url_or_body(host, secret, caplog):
    with caplog.at_level("DEBUG"):
        post_signed(host.url + "?token=hunter2", secret=secret, msg_id="msg_log", body=BODY,
                    timeout=2)
    text = caplog.text
    assert "hunter2" not in text and "rec_1" not in text and secret not in text
