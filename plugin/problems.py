"""RFC 9457 ``application/problem+json`` responses and the app's error handlers.

Nothing a client sends may produce a 500 page or a traceback: every HTTP error on an API route
(``/webhooks/``, ``/status/``, ``/api/``, or a request that prefers JSON) becomes problem+json;
an unexpected exception becomes a bare 500 problem and is logged by type and stack frames
(file, line, function) only: exception messages and source lines can carry SQL parameters or
literals, i.e. personal data, so they are not logged.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException, InternalServerError

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


def _http_error(exc: HTTPException) -> Response | HTTPException:
    if not wants_problem_json():
        return exc
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
    return InternalServerError()


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(Problem, lambda exc: exc.response())
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
