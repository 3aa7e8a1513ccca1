"""Who reached a record: the keyed hash of each request's client address, kept by every audit
entry the request writes, and the reverse-proxy setting that says which address that is.

The address itself is personal data and is never stored or logged by the service: an entry
keeps ``HMAC-SHA256(key, address)`` (32 hex characters), where the key is derived from the
first of ``SECRET_KEYS``. The same address gives the same hash, so the information-governance
team can see that two accesses came from one place, and whoever is given an address can check
it against the trail; the hash cannot be turned back into an address without the key. Rotating
``SECRET_KEYS`` starts new hashes.

Behind reverse proxies, ``TRUSTED_PROXIES`` says how many of them to believe (Werkzeug's
``ProxyFix``); the default, 0, takes the connection's own address.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, current_app, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from sharewise.plugin.records.models import CLIENT
from sharewise.plugin.settings import settings_of

_KEY = "sharewise.access_key"


def client_hash(address: str | None, key: bytes) -> str | None:
    """The keyed hash the audit trail keeps for a client address (``None`` for none)."""
    if not address:
        return None
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]


def access_key(app: Flask) -> bytes:
    """The hashing key of ``app``: derived from its first signing key, for this use only."""
    secret = settings_of(app).secret_keys[0].encode()
    return hmac.new(secret, b"sharewise client address", hashlib.sha256).digest()


def current_client() -> str | None:
    """The keyed hash of the client address of the request being served."""
    return CLIENT.get()


def _begin() -> None:
    key = current_app.extensions[_KEY]
    g.sharewise_client = CLIENT.set(client_hash(request.remote_addr, key))


def _end(_exc: BaseException | None) -> None:
    token = g.pop("sharewise_client", None)
    if token is not None:
        CLIENT.reset(token)


def init_app(app: Flask) -> None:
    """Believe ``TRUSTED_PROXIES`` proxies, and give each request's audit entries its client."""
    proxies = settings_of(app).trusted_proxies
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.extensions[_KEY] = access_key(app)
    app.before_request(_begin)
    app.teardown_request(_end)
