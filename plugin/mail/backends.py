"""Mail backends (SMTP over smtplib, console) and the ``send_mail`` entry point.

Nothing here logs an address, a subject or a body: log lines carry the Message-ID only, so a
misconfigured log level can never leak what an email says or who it went to.
"""

from __future__ import annotations

import hashlib
import logging
import os
import smtplib
import ssl
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol, TextIO
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
_SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}
_DEFAULT_PORTS = {"plain": 25, "starttls": 587, "tls": 465}


class MailError(Exception):
    """A message could not be handed to the mail server.

    ``summary`` is safe to log (exception class and SMTP code, never the server's text, which may
    quote an address).
    """

    def __init__(self, summary: str, *, code: int | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.code = code


class TransientMailError(MailError):
    """Worth retrying: the server is down, timed out, or answered 4xx (or is misconfigured)."""


class PermanentMailError(MailError):
    """Retrying will not help: the server refused the message or recipient with a 5xx reply."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to reach the SMTP server (parsed from ``SMTP_URL``)."""

    host: str
    port: int
    security: str  # "plain" | "starttls" | "tls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | os.PathLike[str] | None = None


def parse_smtp_url(url: str, *, timeout: float = DEFAULT_TIMEOUT,
                   ca_file: str | os.PathLike[str] | None = None) -> SmtpSettings | None:
    """Parse ``smtp://``, ``smtp+starttls://`` or ``smtps://`` URLs.

    Returns ``None`` for an empty URL or ``console://`` (use the console backend). The error for a
    bad URL never repeats the URL, which may hold a password.
    """
    url = (url or "").strip()
    if not url or url.split(":", 1)[0].lower() == "console":
        return None
    parts = urlsplit(url)
    security = _SCHEMES.get(parts.scheme.lower())
    if security is None:
        raise ValueError(
            "SMTP_URL must start with smtp://, smtp+starttls:// or smtps:// "
            f"(got scheme {parts.scheme!r})"
        )
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    try:
        port = parts.port or _DEFAULT_PORTS[security]
    except ValueError as exc:
        raise ValueError("SMTP_URL has an invalid port") from exc
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
        ca_file=ca_file,
    )


def make_message_id(key: str, sender: str) -> str:
    """A Message-ID derived from an idempotency key: the same key always gives the same id.

    A reminder sent twice (for example after a worker died between the server's acceptance and
    the database commit) therefore carries the same Message-ID both times, so mail clients and
    operators can recognise the duplicate. The key is hashed so it never shows in headers.
    """
    domain = sender.rsplit("@", 1)[-1].strip(" <>") or "sharewise.invalid"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    return f"<sharewise.{digest}@{domain}>"


@dataclass(frozen=True)
class OutgoingMail:
    """One message: plain-text part, optional HTML alternative, fixed Message-ID."""

    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None

    def to_message(self) -> EmailMessage:
        """Build the MIME message (multipart/alternative when there is an HTML part)."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        if self.message_id:
            msg["Message-ID"] = self.message_id
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(self.text)
        if self.html is not None:
            msg.add_alternative(self.html, subtype="html")
        return msg


class MailBackend(Protocol):
    """What every backend offers."""

    name: str

    def send(self, mail: OutgoingMail) -> None:
        """Hand the message over, or raise :class:`MailError`."""


def _code_error(code: int, what: str) -> MailError:
    cls = TransientMailError if 400 <= code < 500 else PermanentMailError
    return cls(f"{what} (SMTP {code})", code=code)


class SmtpBackend:
    """Send through an SMTP server, one connection per message, with timeouts.

    STARTTLS and implicit TLS verify the server's certificate against the system store, or
    against ``ca_file`` when given (for a private CA).
    """

    name = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._ssl_context())
        client = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            client.ehlo()
            client.starttls(context=self._ssl_context())
            client.ehlo()
        return client

    def send(self, mail: OutgoingMail) -> None:
        """Send one message; map every failure to a transient or permanent :class:`MailError`."""
        s = self.settings
        try:
            client = self._connect()
        except smtplib.SMTPResponseException as exc:
            raise _code_error(exc.smtp_code, "server refused the connection") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientMailError(f"cannot connect: {type(exc).__name__}") from None
        try:
            if s.username:
                client.login(s.username, s.password or "")
            client.send_message(mail.to_message(), from_addr=mail.sender, to_addrs=list(mail.to))
        except smtplib.SMTPAuthenticationError as exc:
            # A configuration problem the operator fixes; the reminder must wait, not be dropped.
            raise TransientMailError(f"authentication failed (SMTP {exc.smtp_code})",
                                     code=exc.smtp_code) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentMailError(f"recipient refused (SMTP {codes[0]})",
                                         code=codes[0]) from None
            raise TransientMailError(f"recipient deferred (SMTP {min(codes or [451])})",
                                     code=min(codes or [451])) from None
        except smtplib.SMTPResponseException as exc:
            raise _code_error(exc.smtp_code, "server refused the message") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientMailError(f"connection failed: {type(exc).__name__}") from None
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()


class ConsoleBackend:
    """Print messages to a stream (stdout by default) instead of sending them: demo mode only."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, mail: OutgoingMail) -> None:
        """Write the headers and the plain-text part, readable, between markers."""
        stream = self._stream or sys.stdout
        headers = (f"From: {mail.sender}\nTo: {', '.join(mail.to)}\nSubject: {mail.subject}\n"
                   f"Message-ID: {mail.message_id or '-'}\n")
        note = "\n(an HTML version of this text goes with it)" if mail.html is not None else ""
        with self._lock:
            stream.write(f"----- sharewise mail (console backend: printed, not sent) -----\n"
                         f"{headers}\n{mail.text.rstrip()}\n{note}\n----- end of mail -----\n")
            stream.flush()
        log.info("mail printed by the console backend, message-id %s", mail.message_id)


_announced: set[str] = set()
_announce_lock = threading.Lock()


def _announce(kind: str, message: str) -> None:
    with _announce_lock:
        if kind in _announced:
            return
        _announced.add(kind)
    if kind == "console":
        log.warning(message)
    else:
        log.info(message)


def _config_of(app_or_config: Any) -> Mapping[str, Any]:
    return getattr(app_or_config, "config", app_or_config)


def backend_from_config(app_or_config: Any) -> MailBackend:
    """The backend the settings ask for; logs (once per process) which one is in use."""
    config = _config_of(app_or_config)
    timeout = config.get("SMTP_TIMEOUT") or DEFAULT_TIMEOUT
    settings = parse_smtp_url(config.get("SMTP_URL") or "", timeout=timeout,
                              ca_file=config.get("SMTP_CA_FILE") or None)
    if settings is None:
        _announce("console", "mail backend: console (SHAREWISE_SMTP_URL is empty or console://): "
                  "emails are printed to standard output, NOT sent")
        return ConsoleBackend()
    _announce(f"smtp:{settings.host}:{settings.port}",
              f"mail backend: SMTP {settings.security} {settings.host}:{settings.port}")
    return SmtpBackend(settings)


def send_mail(app_or_config: Any, to: str | Sequence[str], subject: str, text: str,
              html: str | None = None, message_id: str | None = None,
              *, backend: MailBackend | None = None) -> str | None:
    """Send one email with the configured backend; returns the Message-ID used.

    ``to`` is one address or several. Raises :class:`TransientMailError` or
    :class:`PermanentMailError`.
    """
    config = _config_of(app_or_config)
    sender = config.get("MAIL_FROM") or "sharewise@localhost"
    recipients = (to,) if isinstance(to, str) else tuple(to)
    if not recipients:
        raise PermanentMailError("no recipient")
    mail = OutgoingMail(sender=sender, to=recipients, subject=subject, text=text, html=html,
                        message_id=message_id)
    if backend is None:
        try:
            backend = backend_from_config(config)
        except ValueError as exc:  # a settings mistake the operator fixes; the mail must wait
            raise TransientMailError(f"mail settings: {exc}") from None
    backend.send(mail)
    return message_id
