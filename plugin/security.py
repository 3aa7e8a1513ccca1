"""HTTP hardening shared by every route: response headers and the cross-site request check.

Every response carries ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``
(a practitioner link is a secret; no page may hand it to another site) and
``X-Frame-Options: DENY``. An HTML response also carries :data:`CSP`: no script at all (the
pages need none), styles and images from this service only, forms posting only back to it,
and ``frame-ancestors 'none'`` (no clickjacking).

Cross-site requests: a browser says where a request comes from, in ``Sec-Fetch-Site`` (every
current browser) and ``Origin``. A POST, PUT, PATCH or DELETE that a browser marks as coming
from another site, or (without ``Sec-Fetch-Site``) whose ``Origin`` is neither this service's
``BASE_URL`` nor the address it was sent to, is refused with ``403`` ``cross-site-request``
before its view runs, so another site's page cannot make a practitioner's browser upload a
form. Scripts and host systems send neither
header and are not affected; the webhooks are authenticated by their signatures instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request

from sharewise.plugin.problems import Problem
from sharewise.plugin.settings import settings_of

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Routes authenticated by a signature rather than by a browser's context.
SIGNED_PREFIXES = ("/webhooks/",)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site(method: str, path: str, fetch_site: str | None, origin: str | None,
               own_origins: set[str]) -> bool:
    """Whether a request is a browser's request from another site (to be refused)."""
    if method not in UNSAFE_METHODS or path.startswith(SIGNED_PREFIXES):
        return False
    if fetch_site is not None:  # a browser's own word, which a page's script cannot change
        return fetch_site not in ("same-origin", "none")
    # An older browser: its Origin. "null" is what a page with no-referrer sends for its own
    # forms, so it cannot be told apart from a sandboxed page and is let through.
    return origin is not None and origin.lower() not in own_origins | {"null"}


def _check_request() -> None:
    own = {_origin(settings_of().base_url), _origin(request.host_url)}
    if cross_site(request.method, request.path, request.headers.get("Sec-Fetch-Site"),
                  request.headers.get("Origin"), own):
        raise Problem(403, "Cross-site request refused",
                      "This address accepts forms only from its own pages. Open the link "
                      "you were sent and upload from that page.", slug="cross-site-request")


def _headers(resp: Response) -> Response:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = CSP
    return resp


def init_app(app: Flask) -> None:
    """Install the request check and the response headers on every route."""
    app.before_request(_check_request)
    app.after_request(_headers)
