"""Outgoing mail: a small backend interface with an SMTP and a console implementation.

``send_mail(app_or_config, to, subject, text, html=None, message_id=None)`` picks the backend
from the settings: ``SMTP_URL`` (``smtp://user:pass@host:port``, ``smtp+starttls://...`` or
``smtps://...``) selects :class:`SmtpBackend`; an empty ``SMTP_URL`` or ``console://`` selects
:class:`ConsoleBackend`, which prints the message to standard output instead of sending it (demo
mode). Which backend is in use is logged once per process.

Errors are split so callers can decide what to retry: :class:`TransientMailError` (server down,
timeout, 4xx replies) and :class:`PermanentMailError` (5xx replies such as an unknown mailbox).
"""

from __future__ import annotations

from sharewise.plugin.mail.backends import (
    ConsoleBackend,
    MailBackend,
    MailError,
    OutgoingMail,
    PermanentMailError,
    SmtpBackend,
    SmtpSettings,
    TransientMailError,
    backend_from_config,
    make_message_id,
    parse_smtp_url,
    send_mail,
)

__all__ = [
    "ConsoleBackend",
    "MailBackend",
    "MailError",
    "OutgoingMail",
    "PermanentMailError",
    "SmtpBackend",
    "SmtpSettings",
    "TransientMailError",
    "backend_from_config",
    "make_message_id",
    "parse_smtp_url",
    "send_mail",
]
