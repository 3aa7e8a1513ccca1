"""RFC 9457 ``application/problem+json`` responses and the app's error handlers.

Nothing a client sends may produce a 500 page or a traceback: every HTTP error on an API route
(``/webhooks/``, ``/status/``, ``/api/``, or a request that prefers JSON) becomes problem+json;
an unexpected exception becomes a bare 500 problem and is logged by type and stack frames
(file, line, function) only: exception messages and source lines can carry SQL parameters or
literals, i.e. personal data, so they are not logged. A browser gets the same errors as a
small HTML page of its own (:func:`html_error`: a ``main`` landmark, a heading and the error's
standard description), not Werkzeug's bare one.

Request bodies (every route, before its view runs): a ``Transfer-Encoding`` with a coding other
than ``chunked`` (``gzip, chunked``...) or a ``Content-Encoding`` other than ``identity`` is
refused with ``415`` ``unsupported-encoding`` (the service decodes neither); a
``Transfer-Encoding`` that does not end with ``chunked`` is ``400`` ``malformed-body``. The
body stream is wrapped so that whatever the server raises while a view reads it (a malformed
chunk size or terminator from gunicorn, an invalid chunk header from Werkzeug's server, a
connection lost mid-chunk) is ``400`` ``malformed-body``. Both always answer problem+json.
"""

from __future__ import annotations

import io
import logging
import traceback
from typing import Any

from flask import Flask, Response, json, request
from markupsafe import escape
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: URL prefixes answered with problem+json; other concerns may append theirs.
API_PREFIXES: list[str] = ["/webhooks/", "/status/", "/api/"]


class Problem(Exception):
    """Raise in a view to answer with a problem (``type`` is ``urn:sharewise:problem:<slug>``)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug
        self.headers = headers or {}
        self.extensions = extensions

    def response(self) -> Response:
        """The problem+json response."""
        return problem(
            self.status,
            self.title,
            self.detail,
            slug=self.slug,
            headers=self.headers,
            **self.extensions,
        )


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """An RFC 9457 problem response."""
    body: dict[str, Any] = {
        "type": f"urn:sharewise:problem:{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    resp.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def wants_problem_json() -> bool:
    """Whether the current request should get problem+json rather than an HTML page."""
    if any(request.path.startswith(p) for p in API_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", PROBLEM_JSON])
    return best in ("application/json", PROBLEM_JSON)


_ERROR_PAGE = """<!doctype html>
<html lang="en-GB">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow"><title>{code} {name} - Sharewise</title></head>
<body><main><h1>{name}</h1><p>{description}</p></main></body>
</html>
"""


def html_error(exc: HTTPException) -> Response:
    """The HTML page of an HTTP error: its status, name and standard description (never
    anything from the request), with the exception's own headers (``Allow`` of a 405)."""
    code = exc.code or 500
    page = _ERROR_PAGE.format(code=code, name=escape(exc.name),
                              description=escape(exc.description or ""))
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return Response(page, status=code, headers=headers, mimetype="text/html")


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if not wants_problem_json():
        return html_error(exc)
    headers = {}
    if exc.code == 405:
        allow = exc.get_response().headers.get("Allow")
        if allow:
            headers["Allow"] = allow
    return problem(
        exc.code or 500,
        exc.name,
        exc.description if exc.code != 500 else None,
        slug=(exc.name or "error").lower().replace(" ", "-"),
        headers=headers,
    )


def _unexpected(exc: Exception) -> Response | HTTPException:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    frames = "\n".join(
        f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
    )
    log.error(
        "unhandled %s on %s %s\n%s", type(exc).__name__, request.method, request.endpoint, frames
    )
    if wants_problem_json():
        return problem(500, "Internal Server Error", slug="internal-error")
    return html_error(InternalServerError())


class MalformedBody(BadRequest):
    """The request body's framing is broken (a bad chunk, a body cut off mid-chunk)."""

    description = ("The request body is not framed correctly (for example a malformed chunk "
                   "size), so none of it was used. Send the request again.")


class UnsupportedEncoding(UnsupportedMediaType):
    """The body has a transfer or content coding the service does not decode."""

    description = ("The body is sent with an encoding Sharewise does not accept. Send it "
                   "without Content-Encoding, and with no Transfer-Encoding other than "
                   "chunked.")


#: Codings a request's Transfer-Encoding may list (``identity`` is a no-op some clients send).
_TRANSFER_CODINGS = frozenset({"chunked", "identity"})


def _codings(header: str | None) -> list[str]:
    return [c.strip(" \t").lower() for c in (header or "").split(",") if c.strip(" \t")]


class GuardedInput(io.RawIOBase):
    """A WSGI input stream whose read errors are :class:`MalformedBody`.

    Whatever the server's stream raises while the body is read is the client's framing (or its
    connection) failing: gunicorn raises its own ``InvalidChunkSize`` and the like, which
    nothing else would turn into an HTTP answer.
    """

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def _guarded(self, read: Any, *args: Any) -> Any:
        try:
            return read(*args)
        except HTTPException:
            raise
        except Exception as exc:
            log.info("request body on %s %s unreadable: %s", request.method, request.endpoint,
                     type(exc).__name__)
            raise MalformedBody() from None

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self._guarded(self._raw.read))
        return bytes(self._guarded(self._raw.read, size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return bytes(self._guarded(self._raw.readline))
        return bytes(self._guarded(self._raw.readline, size))


def _guard_body() -> None:
    """Refuse encodings the service does not decode; wrap the body stream (before each view)."""
    transfer = _codings(request.headers.get("Transfer-Encoding"))
    if any(c not in _TRANSFER_CODINGS for c in transfer):
        raise UnsupportedEncoding()
    if transfer and transfer[-1] != "chunked":
        raise MalformedBody("A Transfer-Encoding must end with chunked.")
    content = _codings(request.headers.get("Content-Encoding"))
    if any(c != "identity" for c in content):
        raise UnsupportedEncoding()
    environ = request.environ
    if "wsgi.input" in environ and not isinstance(environ["wsgi.input"], GuardedInput):
        environ["wsgi.input"] = GuardedInput(environ["wsgi.input"])


def _body_problem(exc: MalformedBody | UnsupportedEncoding) -> Response:
    """problem+json for every client (these come from scripts and hosts, not pages)."""
    if isinstance(exc, UnsupportedEncoding):
        return problem(415, "Unsupported encoding", exc.description,
                       slug="unsupported-encoding",
                       headers={"Accept-Encoding": "identity"})
    return problem(400, "Malformed request body", exc.description, slug="malformed-body")


def init_app(app: Flask) -> None:
    """Register the error handlers and the request-body guard."""
    app.register_error_handler(Problem, lambda exc: exc.response())
    app.register_error_handler(MalformedBody, _body_problem)
    app.register_error_handler(UnsupportedEncoding, _body_problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.before_request(_guard_body)
