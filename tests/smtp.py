"""A real SMTP server on loopback for the tests (aiosmtpd), which can be stopped and restarted.

``SmtpSink`` records every message the server ACCEPTED (the 250 reply to the end of DATA is
about to be sent). It can require AUTH, offer STARTTLS or speak implicit TLS with a self-signed
certificate made by ``cryptography``, answer RCPT with a chosen code, and hold a session at RCPT
(``hold_rcpt()``) or after accepting the message but before the 250 reply
(``hold_after_accept()``) so a test can kill the client at either side of the acceptance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost, usable as its own CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sharewise-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip()

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        sink = self.sink
        if not sink.rcpt_gate.is_set():
            sink.rcpt_reached.set()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sink.rcpt_gate.wait)
        if sink.rcpt_reply:
            return sink.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        sink = self.sink
        # Recorded BEFORE the 250 reply: like a real MTA, the message is in the queue once the
        # end of DATA arrived, whether or not the client lives to read the reply.
        sink._record(Received(envelope.mail_from, list(envelope.rcpt_tos), msg, raw))
        if not sink.data_gate.is_set():
            sink.data_reached.set()
            await asyncio.get_running_loop().run_in_executor(None, sink.data_gate.wait)
        return "250 Message accepted for delivery"


class SmtpSink:
    """A loopback SMTP server: ``start()``, ``stop()`` (connections refused), ``start()`` again."""

    def __init__(self, *, port: int | None = None, credentials: tuple[str, str] | None = None,
                 tls: str | None = None, cert: tuple[Path, Path] | None = None) -> None:
        self.port = port or free_port()
        self.credentials = credentials
        self.tls = tls  # None | "starttls" | "tls"
        self.cert = cert
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None
        self.rcpt_gate = threading.Event()
        self.rcpt_gate.set()
        self.rcpt_reached = threading.Event()
        self.rcpt_reply: str | None = None
        self.data_gate = threading.Event()
        self.data_gate.set()
        self.data_reached = threading.Event()
        self.auth_failures = 0

    # --- server life cycle -------------------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if self.credentials and isinstance(auth_data, LoginPassword):
            ok = (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
            if ok:
                return AuthResult(success=True)
        self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    def _server_context(self) -> ssl.SSLContext:
        assert self.cert is not None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        return ctx

    def start(self) -> None:
        kwargs: dict = {}
        if self.credentials:
            # Without STARTTLS, AUTH is offered but not required (aiosmtpd warns about requiring
            # it in clear text, and does not count implicit TLS as TLS); the client logs in
            # whenever the URL carries credentials, so a wrong password still fails.
            starttls = self.tls == "starttls"
            kwargs.update(authenticator=self._authenticate, auth_required=starttls,
                          auth_require_tls=starttls)
        if self.tls == "starttls":
            kwargs.update(tls_context=self._server_context(), require_starttls=True)
        elif self.tls == "tls":
            kwargs.update(ssl_context=self._server_context(), server_hostname="localhost")
        with warnings.catch_warnings():
            # Plain AUTH without TLS is what a loopback test server wants.
            warnings.simplefilter("ignore", UserWarning)
            controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                    ready_timeout=5, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    # --- what arrived --------------------------------------------------------------------
    def _record(self, item: Received) -> None:
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` messages were accepted; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout=timeout):
                raise AssertionError(
                    f"expected {count} messages within {timeout}s, got {len(self.received)}")
            return list(self.received)

    def hold_rcpt(self) -> None:
        """Make the next RCPT command wait (with the transaction open) until ``release()``."""
        self.rcpt_reached.clear()
        self.rcpt_gate.clear()

    def hold_after_accept(self) -> None:
        """Accept (record) the next message but hold back the 250 reply until ``release()``."""
        self.data_reached.clear()
        self.data_gate.clear()

    def release(self) -> None:
        self.rcpt_gate.set()
        self.data_gate.set()

    def url(self, *, user: str | None = None, password: str | None = None) -> str:
        scheme = {None: "smtp", "starttls": "smtp+starttls", "tls": "smtps"}[self.tls]
        auth = f"{user}:{password}@" if user else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}"
