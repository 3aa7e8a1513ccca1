"""Signed, expiring links for practitioners and the host (itsdangerous).

A token carries only the tenant slug and the opaque public record id, signed with a salt per
purpose (``form``, ``pdf``, ``upload``, ``status``) so a token for one purpose never opens
another. Keys come from ``SECRET_KEYS``: the first key signs, every key verifies (itsdangerous
signs with the *last* key of its list, so the list is reversed here).

The tokens are itsdangerous' own (``URLSafeTimedSerializer``, HMAC-SHA1, ``django-concat`` key
derivation); only two costs are cut, as intake makes four links per record: each purpose's
signer is made once per process and keeps its derived keys instead of hashing the salt and key
again for every token, and the HMAC is computed by OpenSSL's one-shot :func:`hmac.digest`. A
token from plain itsdangerous loads here and one made here loads there (tested).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask import Flask, current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes
from itsdangerous.signer import HMACAlgorithm

PURPOSES = ("form", "pdf", "upload", "status")
#: URL path of each purpose's link (the views registering them must use the same paths).
PATHS = {
    "form": "/form/{token}",
    "pdf": "/form/{token}/pdf",
    "upload": "/upload/{token}",
    "status": "/status/{token}",
}
#: the keys of :func:`make_links`'s result per purpose
URL_KEYS = {
    "form": "form_url",
    "pdf": "form_pdf_url",
    "upload": "upload_url",
    "status": "status_url",
}


class LinkError(Exception):
    """A token did not load (see the subclasses)."""


class LinkExpired(LinkError):
    """The token's signature is valid but it is older than ``LINK_MAX_AGE``."""


class LinkInvalid(LinkError):
    """The token is malformed or its signature does not verify (tampered, or an old key)."""


class LinkWrongPurpose(LinkError):
    """The token is genuine but was issued for another purpose."""


class _HMACSHA1(HMACAlgorithm):
    """itsdangerous' default HMAC-SHA1, through OpenSSL's one-shot ``hmac.digest``."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha1)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, "sha1")


def _kept(owner: Any, store: str, key: Any, make: Callable[[], Any]) -> Any:
    """``make()``, kept per ``key`` in ``owner``'s attribute ``store`` (made on first use)."""
    kept: dict[Any, Any] = owner.__dict__.setdefault(store, {})
    value = kept.get(key)
    if value is None:
        value = kept[key] = make()
    return value


class _Signer(TimestampSigner):
    """itsdangerous' timestamp signer whose derived keys (salt and key only) are kept, and
    which can sign as of a given second (:meth:`sign_at`)."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        derive = super().derive_key
        return _kept(self, "_derived", secret_key, lambda: derive(secret_key))

    def sign(self, value: str | bytes) -> bytes:
        return self.sign_at(value, self.get_timestamp())

    def sign_at(self, value: str | bytes, timestamp: int) -> bytes:
        """What :meth:`TimestampSigner.sign` makes at ``timestamp`` (its own steps)."""
        sep = want_bytes(self.sep)
        value = want_bytes(value) + sep + base64_encode(int_to_bytes(timestamp))
        return value + sep + self.get_signature(value)


class _Serializer(URLSafeTimedSerializer):
    """itsdangerous' serializer that makes its signer once per salt (it makes one per call)."""

    def make_signer(self, salt: str | bytes | None = None) -> Any:
        make = super().make_signer
        return _kept(self, "_signers", salt, lambda: make(salt))


def _serializer(purpose: str, app: Flask | None = None) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return _cached_serializer(purpose, tuple((app or current_app).config["SECRET_KEYS"]))


@lru_cache(maxsize=64)
def _cached_serializer(purpose: str, keys: tuple[str, ...]) -> URLSafeTimedSerializer:
    return _Serializer(list(reversed(keys)), salt=f"sharewise.link.{purpose}",
                       signer=_Signer, signer_kwargs={"algorithm": _HMACSHA1()})


def make_token(tenant: str, record_public_id: str, purpose: str, app: Flask | None = None) -> str:
    """A signed token for one purpose."""
    return _serializer(purpose, app).dumps({"t": tenant, "r": record_public_id})


def load_token(token: str, purpose: str, app: Flask | None = None) -> tuple[str, str]:
    """``(tenant, record_public_id)`` from a token; raises a :class:`LinkError` subclass."""
    app = app or current_app
    max_age = int(app.config["LINK_MAX_AGE"])
    try:
        payload: Any = _serializer(purpose, app).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkExpired("this link has expired") from None
    except BadSignature:
        for other in PURPOSES:
            if other == purpose:
                continue
            try:
                _serializer(other, app).loads(token)
            except BadSignature:
                continue
            raise LinkWrongPurpose(f"this link is for {other}, not {purpose}") from None
        raise LinkInvalid("this link is not valid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("t"), str) or not isinstance(
        payload.get("r"), str
    ):
        raise LinkInvalid("this link is not valid")
    return payload["t"], payload["r"]


def link_url(tenant: str, record_public_id: str, purpose: str, app: Flask | None = None) -> str:
    """The absolute URL of one link under ``BASE_URL``."""
    app = app or current_app
    token = make_token(tenant, record_public_id, purpose, app)
    return app.config["BASE_URL"] + PATHS[purpose].format(token=token)


@lru_cache(maxsize=64)
def _cached_signer(purpose: str, keys: tuple[str, ...]) -> Any:
    return _cached_serializer(purpose, keys).make_signer()


def make_links(record: Any, app: Flask | None = None) -> dict[str, str]:
    """``form_url``, ``form_pdf_url``, ``upload_url``, ``status_url`` for a record (anything
    with ``tenant`` and ``public_id``; see :func:`links_for`)."""
    return links_for(record.tenant, record.public_id, app)


def issued_now() -> int:
    """The second links made now carry (what itsdangerous would put in them)."""
    return int(time.time())


def links_for(tenant: str, record_public_id: str, app: Flask | None = None, *,
              issued_at: int | None = None) -> dict[str, str]:
    """:func:`make_links` from the tenant slug and the record's public id.

    The same tokens as :func:`make_token` makes, with the payload serialised once for the
    four of them and each purpose's signer built once per process (intake's hot path).
    ``issued_at`` (seconds since the epoch, default now) is the time the tokens carry: the
    same record, keys and ``issued_at`` give the same links, byte for byte, which is how a
    stored answer is repeated without keeping its links (see ``records.services``).
    """
    app = app or current_app
    keys = tuple(app.config["SECRET_KEYS"])
    payload = _cached_serializer(PURPOSES[0], keys).dump_payload(
        {"t": tenant, "r": record_public_id})
    base = app.config["BASE_URL"]
    at = issued_now() if issued_at is None else issued_at
    # what _Signer.sign_at does, with the signed value (the same for the four) made once
    value = payload + b"." + base64_encode(int_to_bytes(at))
    out = {}
    for purpose, key in zip(PURPOSES, _signing_keys(keys), strict=True):
        token = value + b"." + base64_encode(hmac.digest(key, value, "sha1"))
        out[URL_KEYS[purpose]] = base + PATHS[purpose].format(token=token.decode("ascii"))
    return out


@lru_cache(maxsize=16)
def _signing_keys(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    """Each purpose's derived signing key (itsdangerous' own derivation, for the first key)."""
    signers = [_cached_signer(p, keys) for p in PURPOSES]
    if not all(want_bytes(s.sep) == b"." and isinstance(s.algorithm, _HMACSHA1) for s in signers):
        raise RuntimeError("links_for assumes itsdangerous' '.' separator and HMAC-SHA1")
    return tuple(s.derive_key() for s in signers)
