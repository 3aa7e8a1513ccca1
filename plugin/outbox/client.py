"""The signed HTTP client that posts one delivery to a tenant's callback URL.

One call is one attempt: the JSON body is posted with the Standard Webhooks headers
(``webhook-id`` is the delivery's stable id, the same on every retry; ``webhook-timestamp`` is
the time of this attempt; ``webhook-signature`` is ``v1,<base64 HMAC-SHA256>`` over
``id.timestamp.body`` with the tenant's callback secret). Only ``http`` and ``https`` URLs are
called, redirects are never followed, the whole attempt is bounded by a timeout and at most a
small, fixed number of response bytes is read.

The result is an :class:`AttemptOutcome` that says what the delivery should do next:

- ``success``: a 2xx answer;
- ``retry``: connection errors, timeouts, 429 and 5xx (with the host's ``Retry-After``);
- ``failed``: any other answer (4xx, and 3xx, since redirects are not followed) or a callback
  URL that is not ``http(s)``: the host or the configuration rejected it, retrying will not help;
- ``disable``: 410 Gone: the host asks not to be called again until an operator re-enables it.

Nothing here logs the body, the secret or the URL's query string.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from sharewise.plugin.outbox.schedule import parse_retry_after
from sharewise.plugin.signing import sign

# httpx logs every request's full URL at INFO; a callback URL may carry a token in its query.
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_TIMEOUT = 15.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Sharewise-Webhooks/1"


class Verdict(enum.StrEnum):
    """What an attempt's result means for the delivery."""

    SUCCESS = "success"
    RETRY = "retry"
    FAILED = "failed"
    DISABLE = "disable"


@dataclass(frozen=True)
class AttemptOutcome:
    """The result of one attempt: the verdict plus what gets recorded about it."""

    verdict: Verdict
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None


class InvalidCallbackURL(ValueError):
    """The callback URL is not an absolute ``http(s)`` URL with a host."""


def check_callback_url(url: str) -> str:
    """Return ``url`` if it is an absolute ``http(s)`` URL with a host, else raise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise InvalidCallbackURL("callback URL cannot be parsed") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidCallbackURL("callback URL must use http or https")
    if not host:
        raise InvalidCallbackURL("callback URL has no host")
    return url


def classify(status_code: int) -> Verdict:
    """The verdict for an HTTP status code."""
    if 200 <= status_code < 300:
        return Verdict.SUCCESS
    if status_code == 410:
        return Verdict.DISABLE
    if status_code == 429 or status_code >= 500:
        return Verdict.RETRY
    return Verdict.FAILED


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict:
    """The Standard Webhooks headers (plus content type) for one attempt."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def post_signed(
    url: str,
    *,
    secret: str,
    msg_id: str,
    body: bytes,
    timeout: float = DEFAULT_TIMEOUT,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    transport: httpx.BaseTransport | None = None,
) -> AttemptOutcome:
    """Make one signed attempt to post ``body`` to ``url`` and classify what happened.

    Never raises for anything the network or the host does; an invalid URL is a ``failed``
    outcome with ``error="invalid_url"`` and no request is made.
    """
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_callback_url(url)
    except InvalidCallbackURL:
        return AttemptOutcome(Verdict.FAILED, None, "invalid_url", 0)

    headers = signed_headers(secret, msg_id, body)
    deadline = started + timeout
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        ) as client:
            with client.stream("POST", url, content=body, headers=headers) as response:
                read = 0
                for chunk in response.iter_raw():
                    read += len(chunk)
                    if read >= max_response_bytes or time.monotonic() > deadline:
                        break
                status = response.status_code
                retry_after_header = response.headers.get("retry-after")
    except httpx.TimeoutException:
        return AttemptOutcome(Verdict.RETRY, None, "timeout", elapsed_ms())
    except httpx.ConnectError:
        return AttemptOutcome(Verdict.RETRY, None, "connect_error", elapsed_ms())
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        return AttemptOutcome(Verdict.RETRY, None, "network_error", elapsed_ms())
    except httpx.HTTPError:
        return AttemptOutcome(Verdict.RETRY, None, "http_error", elapsed_ms())

    verdict = classify(status)
    retry_after = parse_retry_after(retry_after_header) if verdict is Verdict.RETRY else None
    error = "redirect_not_followed" if 300 <= status < 400 else None
    return AttemptOutcome(verdict, status, error, elapsed_ms(), retry_after)
