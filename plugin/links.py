"""Signed, expiring links for practitioners and the host (itsdangerous).

A token carries only the tenant slug and the opaque public record id, signed with a salt per
purpose (``form``, ``pdf``, ``upload``, ``status``) so a token for one purpose never opens
another. Keys come from ``SECRET_KEYS``: the first key signs, every key verifies. Each purpose
has one plain :class:`itsdangerous.URLSafeTimedSerializer`, given the key list oldest first as
its documentation asks (it signs with the *last* key of its list, so the configured list is
reversed here). Links are always signed now: the same record gives new links each time.

The payload is never compressed (itsdangerous compresses a payload when that makes it
shorter, and decompresses any payload that starts with ``.``, without a bound): the service
writes plain base64 JSON only, and :func:`load_token` refuses anything else.

:func:`load_token` is the one place a token is decoded. Whatever a client sends, it returns
``(tenant, record_public_id)`` or raises a :class:`LinkError` (never another exception), and
it touches no database: the token's length and alphabet are bounded first, then its signature,
age and payload are checked, and the payload must be exactly what :func:`make_token` writes
(an object with the keys ``t`` and ``r``, a tenant slug and a record id in the formats the
service makes them). A token signed with a valid key but carrying anything else (which the
service never made) is :class:`LinkInvalid`, like a tampered one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from flask import Flask, current_app
from itsdangerous import BadData, BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer

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

#: Longest token :func:`load_token` looks at. The longest the service makes (a 63-character
#: tenant slug) is about 170 characters; anything longer is refused before it is decoded.
MAX_TOKEN_LENGTH = 256
#: What a token the service made looks like: three parts of URL-safe base64 (payload,
#: timestamp, signature). A compressed payload starts with ``.`` and does not match.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
#: A tenant slug (the rule of :data:`sharewise.plugin.tenants.SLUG`, matched whole).
TENANT_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: A record's public id as :func:`sharewise.plugin.records.models.new_public_id` makes it:
#: ``SR-`` and 80 random bits in (unpadded) base32.
RECORD_PUBLIC_ID = re.compile(r"SR-[A-Z2-7]{16}")
#: Every error decoding a hostile token may raise (itsdangerous' own are :class:`BadData`;
#: the others come from timestamps, JSON and text that do not fit).
_DECODE_ERRORS = (BadData, ValueError, OverflowError, RecursionError, UnicodeError, OSError,
                  TypeError)


class LinkError(Exception):
    """A token did not load (see the subclasses)."""


class LinkExpired(LinkError):
    """The token's signature is valid but it is older than ``LINK_MAX_AGE``."""


class LinkInvalid(LinkError):
    """The token is malformed, its signature does not verify (tampered, or an old key), or it
    carries a payload the service never makes."""


class LinkWrongPurpose(LinkError):
    """The token is genuine but was issued for another purpose."""


class _Serializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed serializer without compression, either way."""

    def dump_payload(self, obj: Any) -> bytes:
        """The JSON payload in URL-safe base64, never compressed."""
        return base64_encode(Serializer.dump_payload(self, obj))

    def load_payload(self, payload: bytes, *args: Any, **kwargs: Any) -> Any:
        """Refuses a compressed payload (it would be inflated without a bound)."""
        if payload.startswith(b"."):
            raise BadData("compressed payloads are not accepted")
        return super().load_payload(payload, *args, **kwargs)


def signer(salt: str, app: Flask | None = None, *,
           compress: bool = False) -> URLSafeTimedSerializer:
    """The URL-safe timed serializer of ``salt`` over the link keys (``SECRET_KEYS``): it signs
    with the first configured key and verifies with every one. Its payloads are never
    compressed, either way, unless ``compress`` (itsdangerous' own behaviour: compressed when
    that is shorter, for formats that always were)."""
    return _signer_for(salt, tuple((app or current_app).config["SECRET_KEYS"]), compress)


@lru_cache(maxsize=64)
def _signer_for(salt: str, keys: tuple[str, ...], compress: bool) -> URLSafeTimedSerializer:
    # itsdangerous takes the keys oldest first and signs with the last: the first configured
    # key (the newest) goes last
    kind = URLSafeTimedSerializer if compress else _Serializer
    return kind(list(reversed(keys)), salt=salt)


def _serializer(purpose: str, app: Flask | None = None) -> URLSafeTimedSerializer:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return signer(f"sharewise.link.{purpose}", app)


def make_token(tenant: str, record_public_id: str, purpose: str, app: Flask | None = None) -> str:
    """A signed token for one purpose, signed now with the first configured key."""
    return _serializer(purpose, app).dumps({"t": tenant, "r": record_public_id})


def _payload(data: Any) -> tuple[str, str]:
    """``(tenant, record_public_id)`` from a loaded payload exactly as the service writes it,
    or :class:`LinkInvalid`."""
    if (type(data) is not dict or data.keys() != {"t", "r"} or type(data["t"]) is not str
            or type(data["r"]) is not str or not TENANT_SLUG.fullmatch(data["t"])
            or not RECORD_PUBLIC_ID.fullmatch(data["r"])):
        raise LinkInvalid("this link is not valid")
    return data["t"], data["r"]


def _signed_for(token: str, purpose: str, app: Flask) -> bool:
    """Whether ``token`` is a genuine token of ``purpose`` (however old; not dated ahead)."""
    try:
        data, signed = _serializer(purpose, app).loads(token, return_timestamp=True)
        _payload(data)
    except (LinkError, *_DECODE_ERRORS):
        return False
    return signed.timestamp() <= time.time()


class LinkClaims(NamedTuple):
    """What a genuine token says: whose record, and when the link was signed."""

    tenant: str
    record_id: str
    issued_at: datetime


def load_token(token: str, purpose: str, app: Flask | None = None) -> tuple[str, str]:
    """``(tenant, record_public_id)`` from a token of ``purpose`` (see :func:`read_token`)."""
    claims = read_token(token, purpose, app)
    return claims.tenant, claims.record_id


def read_token(token: str, purpose: str, app: Flask | None = None) -> LinkClaims:
    """The claims of a token of ``purpose``; raises a :class:`LinkError` subclass and nothing
    else, and touches no database (whether the record revoked its links is the caller's
    check, against ``issued_at``).

    :class:`LinkExpired`: genuine, but older than ``LINK_MAX_AGE``. :class:`LinkWrongPurpose`:
    genuine, but made for another purpose. :class:`LinkInvalid`: anything else (too long,
    not a token, tampered, signed with a key no longer configured, dated in the future, or a
    payload the service does not make).
    """
    app = app or current_app
    serializer = _serializer(purpose, app)  # an unknown purpose is the caller's bug
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(
            token):
        raise LinkInvalid("this link is not valid")
    max_age = app.config["LINK_MAX_AGE"]
    try:
        data, signed = serializer.loads(token, max_age=max_age, return_timestamp=True)
        return LinkClaims(*_payload(data), signed)
    except SignatureExpired as exc:
        # genuine, and either too old or dated in the future (which the service never does)
        signed = exc.date_signed
        if signed is None or signed.timestamp() > time.time() or exc.payload is None:
            raise LinkInvalid("this link is not valid") from None
        try:
            _payload(serializer.load_payload(exc.payload))
        except (LinkError, *_DECODE_ERRORS):
            raise LinkInvalid("this link is not valid") from None
        raise LinkExpired("this link has expired") from None
    except BadSignature:
        for other in PURPOSES:
            if other != purpose and _signed_for(token, other, app):
                raise LinkWrongPurpose(f"this link is for {other}, not {purpose}") from None
        raise LinkInvalid("this link is not valid") from None
    except _DECODE_ERRORS:
        raise LinkInvalid("this link is not valid") from None


#: a manager's team link (the overview of their practitioners' open records) lasts two weeks:
#: each working day's digest brings a fresh one
TEAM_SECONDS = 14 * 86400
#: the salt of the team links' signer
TEAM_SALT = "sharewise.link.team"


def manager_key(tenant: str, address: str, app: Flask | None = None) -> str:
    """A keyed hash of a manager's address within a tenant: what a team link names (the
    address itself is never in a link)."""
    key = tuple((app or current_app).config["SECRET_KEYS"])[0].encode()
    return hmac.new(key, f"{tenant}\0{address.strip().lower()}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def team_url(tenant: str, address: str, app: Flask | None = None) -> str:
    """The absolute URL of a manager's team overview (``/admin/team/<token>``)."""
    app = app or current_app
    token = signer(TEAM_SALT, app).dumps([tenant, manager_key(tenant, address, app)])
    return f"{app.config['BASE_URL']}/admin/team/{token}"


def load_team_token(token: str, app: Flask | None = None) -> tuple[str, str]:
    """``(tenant, manager key)`` of a team link, or :class:`LinkError`."""
    try:
        tenant, key = signer(TEAM_SALT, app).loads(token, max_age=TEAM_SECONDS)
    except SignatureExpired:
        raise LinkExpired("this team link has expired") from None
    except (*_DECODE_ERRORS, ValueError, TypeError):
        raise LinkInvalid("this team link is not valid") from None
    if not isinstance(tenant, str) or not isinstance(key, str):
        raise LinkInvalid("this team link is not valid")
    return tenant, key


def link_url(tenant: str, record_public_id: str, purpose: str, app: Flask | None = None) -> str:
    """The absolute URL of one link under ``BASE_URL``."""
    app = app or current_app
    token = make_token(tenant, record_public_id, purpose, app)
    return app.config["BASE_URL"] + PATHS[purpose].format(token=token)


def make_links(record: Any, app: Flask | None = None) -> dict[str, str]:
    """``form_url``, ``form_pdf_url``, ``upload_url``, ``status_url`` for a record (anything
    with ``tenant`` and ``public_id``; see :func:`links_for`)."""
    return links_for(record.tenant, record.public_id, app)


def links_for(tenant: str, record_public_id: str, app: Flask | None = None) -> dict[str, str]:
    """:func:`make_links` from the tenant slug and the record's public id, signed now."""
    app = app or current_app
    return {URL_KEYS[purpose]: link_url(tenant, record_public_id, purpose, app)
            for purpose in PURPOSES}
