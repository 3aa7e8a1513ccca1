"""Standard Webhooks signing and verification, by hand (small; cross-checked in the tests
against the independent ``standardwebhooks`` package).

The signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``, HMAC-SHA256 with the
base64-decoded secret (``whsec_`` prefix stripped), sent as ``v1,<base64>``; the
``webhook-signature`` header may carry several space-separated signatures (secret rotation),
and several secrets may be configured: any match of any pair verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE = 300


class VerificationError(Exception):
    """The webhook's signature headers do not verify (the message says why, no secrets)."""


class MissingHeaders(VerificationError):
    """A required ``webhook-*`` header is missing."""


class BadTimestamp(VerificationError):
    """The timestamp is not a number, too old or too far in the future."""


class BadSignature(VerificationError):
    """No signature matches any configured secret."""


def generate_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


def secret_bytes(secret: str | bytes) -> bytes:
    """The key bytes of a ``whsec_<base64>`` (or bare base64) secret."""
    if isinstance(secret, bytes):
        return secret
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValueError("webhook secret is not valid base64") from None


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a message."""
    content = msg_id.encode() + b"." + str(int(timestamp)).encode() + b"." + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_headers(
    secret: str | bytes, msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for an outgoing message."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secrets: Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str:
    """Verify a message; return its ``webhook-id``. Raises a :class:`VerificationError`.

    ``headers`` is any case-insensitive mapping (Flask's ``request.headers``) or a dict with
    lower-case keys.
    """
    msg_id = headers.get("webhook-id")
    ts_text = headers.get("webhook-timestamp")
    sig_header = headers.get("webhook-signature")
    if not msg_id or not ts_text or not sig_header:
        raise MissingHeaders("missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(msg_id) > 255:
        raise MissingHeaders("webhook-id is too long")
    try:
        ts = int(ts_text.strip())
    except ValueError:
        raise BadTimestamp("webhook-timestamp is not a Unix time in seconds") from None
    current = time.time() if now is None else now
    if ts < current - tolerance:
        raise BadTimestamp("webhook-timestamp is too old")
    if ts > current + tolerance:
        raise BadTimestamp("webhook-timestamp is in the future")
    offered = []
    for part in sig_header.split():
        version, _, sig = part.partition(",")
        if version == "v1" and sig:
            offered.append(sig.encode("ascii", "replace"))
    if not offered:
        raise BadSignature("no v1 signature in webhook-signature")
    matched = False
    for secret in secrets:
        expected = sign(secret, msg_id, ts, body)[3:].encode("ascii")
        for sig in offered:
            # no early exit: every comparison is constant-time and all are made
            matched |= hmac.compare_digest(expected, sig)
    if not matched:
        raise BadSignature("signature does not match")
    return msg_id
