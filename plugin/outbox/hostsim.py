"""A reference host: a small real HTTP server that receives Sharewise's post-backs.

It is what the delivery tests post to and what ``sharewise demo`` runs as the host case system.
It listens on loopback, checks every request's Standard Webhooks signature with the
``standardwebhooks`` package (an implementation independent of the one Sharewise signs with),
deduplicates by ``webhook-id`` the way a well-behaved host should, and keeps two lists: every
request it got (:attr:`HostSimulator.requests`) and the unique records it stored
(:attr:`HostSimulator.records`).

It can be told to misbehave, one scripted reply per request, then back to ``200``:

- :meth:`HostSimulator.fail` answers ``500`` (or any status, with an optional ``Retry-After``)
  for the next ``n`` requests; :meth:`~HostSimulator.always` answers one status until reset;
- :meth:`HostSimulator.stall` waits longer than the client's timeout before answering (and
  stores the record when it finally answers ``2xx``: a slow host that did get the post);
- :meth:`HostSimulator.redirect` answers ``302`` with a ``Location``;
- :meth:`HostSimulator.go_offline` stops listening (connection refused) and
  :meth:`HostSimulator.come_back` listens on the same port again;
- ``on_receipt`` is called after a record is stored and before the answer is written (tests
  use it to SIGKILL a worker at exactly that moment).

Run it alone with ``python -m sharewise.plugin.outbox.hostsim --secret whsec_... --port 8765``: it
prints one line per request and a summary of each record it stores.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Largest body the simulator reads; a bigger one gets 413 (Sharewise's records are far smaller).
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, optional headers, and an optional delay before it."""

    status: int = 200
    retry_after: str | None = None
    location: str | None = None
    delay: float = 0.0


@dataclass
class Received:
    """What the simulator saw for one request (the body itself is kept only in ``records``)."""

    webhook_id: str | None
    webhook_timestamp: str | None
    event_type: str | None
    verified: bool
    status: int
    duplicate: bool = False
    at: float = field(default_factory=time.time)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sim: HostSimulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep the test output quiet; the simulator records what it needs itself."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        """Receive one post-back."""
        self.server.sim._handle(self)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        """A tiny health check so a demo can see the host is up."""
        self._send(200, b'{"ok": true}')

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            # The client gave up (timeout) or died (SIGKILL): nothing to answer to.
            self.close_connection = True


class HostSimulator:
    """A host case system on loopback that verifies, deduplicates and records post-backs."""

    def __init__(
        self,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/sharewise/callback",
        on_receipt: Callable[[Received, dict], None] | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        try:
            from standardwebhooks import Webhook
        except ImportError as exc:  # a dependency of the project; missing only in odd installs
            raise RuntimeError(
                "the host simulator needs the 'standardwebhooks' package "
                "(pip install -e .)"
            ) from exc
        self._webhook = Webhook(secret)
        self._verify_error = _verification_error()
        self.host = host
        self.port = port
        self.path = path
        self.on_receipt = on_receipt
        self.echo = echo
        self.requests: list[Received] = []
        self.records: dict[str, dict] = {}
        #: verified requests that arrived, counted before any scripted delay (so a test can act
        #: while the host is still "working" on one)
        self.arrivals = 0
        self._script: deque[Reply] = deque()
        self._default = Reply(200)
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The callback URL to put in a tenant's ``callback_url``."""
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def online(self) -> bool:
        """Whether the simulator is listening."""
        return self._server is not None

    def start(self) -> HostSimulator:
        """Start listening (on a free port the first time, the same port afterwards)."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.sim = self
        self.port = server.server_address[1]
        self._server = server
        self._wake.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and wake any request that is stalling."""
        server, self._server = self._server, None
        if server is None:
            return
        self._wake.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def go_offline(self) -> None:
        """Stop listening: the next attempts get ``connection refused``."""
        self.stop()

    def come_back(self) -> None:
        """Listen again on the same port."""
        self.start()

    def __enter__(self) -> HostSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------------------------

    def fail(self, n: int = 1, status: int = 500, retry_after: str | None = None) -> None:
        """Answer ``status`` (default 500) to the next ``n`` requests."""
        with self._cond:
            self._script.extend(Reply(status, retry_after=retry_after) for _ in range(n))

    def stall(self, n: int = 1, seconds: float = 5.0, status: int = 200) -> None:
        """Wait ``seconds`` before answering the next ``n`` requests (store on a 2xx answer)."""
        with self._cond:
            self._script.extend(Reply(status, delay=seconds) for _ in range(n))

    def redirect(self, location: str, n: int = 1) -> None:
        """Answer ``302 Location: location`` to the next ``n`` requests."""
        with self._cond:
            self._script.extend(Reply(302, location=location) for _ in range(n))

    def always(self, status: int, retry_after: str | None = None) -> None:
        """Answer ``status`` to every request once the script is used up."""
        with self._cond:
            self._default = Reply(status, retry_after=retry_after)

    def reset(self) -> None:
        """Forget scripted failures and answer ``200`` again."""
        with self._cond:
            self._script.clear()
            self._default = Reply(200)

    # -- observation -------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[HostSimulator], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every request) or time runs out."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout=timeout)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> bool:
        """Block until at least ``n`` requests arrived."""
        return self.wait_for(lambda s: len(s.requests) >= n, timeout)

    def wait_for_records(self, n: int, timeout: float = 10.0) -> bool:
        """Block until at least ``n`` unique records are stored."""
        return self.wait_for(lambda s: len(s.records) >= n, timeout)

    def requests_for(self, webhook_id: str) -> list[Received]:
        """Every request that carried ``webhook_id``."""
        with self._cond:
            return [r for r in self.requests if r.webhook_id == webhook_id]

    # -- the request path --------------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._cond:
            return self._script.popleft() if self._script else self._default

    def _note(self, received: Received, body: dict | None = None) -> bool:
        """Record a request; store ``body`` unless its webhook-id is known. True if stored."""
        with self._cond:
            stored = False
            if body is not None and received.webhook_id is not None:
                if received.webhook_id in self.records:
                    received.duplicate = True
                else:
                    self.records[received.webhook_id] = body
                    stored = True
            self.requests.append(received)
            self._cond.notify_all()
        if self.echo is not None:
            self.echo(_request_line(received))
            if stored and body is not None:
                self.echo(describe(body))
        return stored

    def _handle(self, req: _Handler) -> None:
        headers = {k.lower(): v for k, v in req.headers.items()}
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            req._send(413)
            req.close_connection = True
            return
        raw = req.rfile.read(length)
        wid = headers.get("webhook-id")
        wts = headers.get("webhook-timestamp")
        if req.path.split("?", 1)[0] != self.path:
            self._note(Received(wid, wts, None, False, 404))
            req._send(404)
            return
        try:
            body = self._webhook.verify(raw, headers)
        except (self._verify_error, ValueError):
            self._note(Received(wid, wts, None, False, 401))
            req._send(401, b'{"error": "bad signature"}')
            return
        if not isinstance(body, dict):
            self._note(Received(wid, wts, None, True, 400))
            req._send(400, b'{"error": "not an event"}')
            return
        event_type = body.get("type")
        reply = self._next_reply()
        with self._cond:
            self.arrivals += 1
            self._cond.notify_all()
        if reply.delay:
            self._wake.wait(reply.delay)
        received = Received(wid, wts, event_type, True, reply.status)
        if 200 <= reply.status < 300:
            self._note(received, body)
            if self.on_receipt is not None:
                self.on_receipt(received, body)
        else:
            self._note(received)
        extra: dict[str, str] = {}
        if reply.retry_after is not None:
            extra["retry-after"] = reply.retry_after
        if reply.location is not None:
            extra["location"] = reply.location
        req._send(reply.status, b"{}", extra)


def _verification_error() -> type[Exception]:
    from standardwebhooks.webhooks import WebhookVerificationError

    return WebhookVerificationError


def _request_line(r: Received) -> str:
    dup = " (duplicate, already stored)" if r.duplicate else ""
    ok = "signature ok" if r.verified else "signature REJECTED"
    return f"host: {r.event_type or '?'} webhook-id={r.webhook_id} {ok} -> {r.status}{dup}"


def describe(body: dict) -> str:
    """A short, human summary of a stored post-back, as a host would show it.

    For a record it checks the PDF itself: the SHA-256 of the decoded bytes against the one
    announced, and the size.
    """
    data = body.get("data")
    if not isinstance(data, dict):
        data = {}
    lines = [f"host stored {body.get('type')} for record {data.get('record_id')}"]
    for key in ("request_id", "status", "decision", "completed_at", "due_at", "escalated_to"):
        if key in data:
            lines.append(f"  {key}: {data[key]}")
    if isinstance(data.get("fields"), dict):
        lines.append(f"  fields: {len(data['fields'])}")
    pdf = data.get("pdf")
    if isinstance(pdf, dict) and "base64" in pdf:
        try:
            raw = base64.b64decode(pdf["base64"], validate=True)
        except (TypeError, ValueError):  # binascii.Error is a ValueError
            lines.append("  pdf: not readable (base64 field is not base64)")
            return "\n".join(lines)
        ok = hashlib.sha256(raw).hexdigest() == pdf.get("sha256") and len(raw) == pdf.get("size")
        lines.append(
            f"  pdf: {len(raw)} bytes sha256={hashlib.sha256(raw).hexdigest()} "
            f"({'matches' if ok else 'DOES NOT MATCH'} the announced hash)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="Sharewise reference host simulator")
    parser.add_argument("--secret", required=True, help="the tenant's callback_secret")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--path", default="/sharewise/callback")
    args = parser.parse_args(argv)
    sim = HostSimulator(args.secret, host=args.host, port=args.port, path=args.path, echo=print)
    with sim:
        print(f"host simulator listening on {sim.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()


__all__ = ["HostSimulator", "Received", "Reply", "describe"]
