"""plugin.signing against the independent ``standardwebhooks`` package."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sharewise.plugin import signing

BODY = '{"type":"share.requested","data":{"name":"Zoë"}}'.encode()


def test_our_signature_verifies_with_the_library():
    secret = signing.generate_secret()
    ts = int(time.time())
    headers = signing.sign_headers(secret, "msg_1", BODY, ts)
    Webhook(secret).verify(BODY, headers)  # raises if wrong


def test_library_signature_verifies_with_ours():
    secret = signing.generate_secret()
    from datetime import UTC, datetime

    ts = datetime.now(UTC)
    sig = Webhook(secret).sign("msg_2", ts, BODY.decode())
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(int(ts.timestamp())),
               "webhook-signature": sig}
    assert signing.verify([secret], headers, BODY) == "msg_2"


def test_rotation_two_signatures_two_secrets():
    old, new, other = (signing.generate_secret() for _ in range(3))
    ts = int(time.time())
    sig_new = signing.sign(new, "m", ts, BODY)
    sig_other = signing.sign(other, "m", ts, BODY)
    headers = {"webhook-id": "m", "webhook-timestamp": str(ts),
               "webhook-signature": f"{sig_other} {sig_new}"}
    assert signing.verify([old, new], headers, BODY) == "m"
    with pytest.raises(signing.BadSignature):
        signing.verify([old], headers, BODY)


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_tolerance(offset):
    secret = signing.generate_secret()
    ts = int(time.time()) + offset
    headers = signing.sign_headers(secret, "m", BODY, ts)
    with pytest.raises(signing.BadTimestamp):
        signing.verify([secret], headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


def test_tampered_body_and_missing_headers():
    secret = signing.generate_secret()
    headers = signing.sign_headers(secret, "m", BODY)
    with pytest.raises(signing.BadSignature):
        signing.verify([secret], headers, BODY + b" ")
    with pytest.raises(signing.MissingHeaders):
        signing.verify([secret], {"webhook-id": "m"}, BODY)
    bad = dict(headers, **{"webhook-timestamp": "soon"})
    with pytest.raises(signing.BadTimestamp):
        signing.verify([secret], bad, BODY)
