"""Settings: every ``SHAREWISE_*`` setting, typed and checked, in one frozen object.

The definitions live here, in :class:`Settings`: one field per setting, each with its default
(written as the text an environment variable would hold), its documentation (the README's
settings table is generated from it: ``sharewise settings --readme README.md``) and its
:class:`Kind`, which parses and checks a value.

:func:`build` makes the object, once per process: the defaults, then a mapping given by the
caller (tests: ``create_app(config)``), then the ``SHAREWISE_<KEY>`` environment variables (an
empty variable counts as unset). ``{DATA_DIR}`` and ``{PORT}`` in a value stand for those
settings' final values. Paths, ``sqlite:///`` files, ``filesystem://`` brokers and local file
stores are made absolute there, once: nothing is resolved against the current directory later.
Building touches nothing on disk. A bad value raises :class:`SettingsError`, whose message is
one line naming the variable, the value (passwords masked) and what is expected.

``create_app`` keeps the object in ``app.extensions`` (:func:`settings_of`) and puts the same
typed values in ``app.config`` under the upper-case keys (what Flask's own code and the request
code read); :func:`update` changes both on a running app (tests).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, current_app

ENV_PREFIX = "SHAREWISE"
#: The embedded broker's URL scheme: kombu's SQLAlchemy transport on a SQLite file.
SQLA_SQLITE = "sqla+sqlite:///"
EXTENSION = "sharewise.settings"
#: The Standard Webhooks retry schedule, the default of DELIVERY_SCHEDULE (the same as
#: ``outbox.schedule.STANDARD_SCHEDULE``; a test checks they agree).
STANDARD_SCHEDULE = "0,5,300,1800,7200,18000,36000,50400,72000,86400"


class SettingsError(ValueError):
    """A setting has a bad value (the message is one line: variable, value, expectation)."""


class StartupError(RuntimeError):
    """A process cannot start: the database or the broker is unreachable (one-line message)."""


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def unreachable(what: str, url: str, exc: BaseException, verb: str = "reach") -> str:
    """The one-line message for a database or broker that cannot be reached (or used)."""
    reason = getattr(exc, "orig", None) or exc
    text = " ".join(line.strip() for line in str(reason).splitlines() if line.strip())
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
    return f"cannot {verb} the {what} {mask_url(url)}: {text or type(reason).__name__}"


# ------------------------------------------------------------------------------ kinds


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Kind:
    """How one setting's value is read and checked; ``expected`` ends its error message."""

    expected = "a value"
    secret = False  # never echo the value in an error

    def parse(self, value: Any) -> Any:
        """The typed value of ``value`` (text, or already typed); ``ValueError`` if bad."""
        raise NotImplementedError

    def text(self, value: Any) -> str:
        """``value`` as an environment variable would hold it."""
        return str(value)


@dataclass(frozen=True)
class Int(Kind):
    """A whole number within ``low`` .. ``high``."""

    low: int
    high: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        """What a good value looks like."""
        if self.high is None:
            return f"an integer of at least {self.low}"
        return f"an integer from {self.low} to {self.high}"

    def parse(self, value: Any) -> int:
        """An ``int`` (``True``/``False`` and fractions are refused)."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError
        number = int(value.strip()) if isinstance(value, str) else value
        if number < self.low or (self.high is not None and number > self.high):
            raise ValueError
        return number


@dataclass(frozen=True)
class Number(Kind):
    """A finite number (seconds, a factor), at least ``low`` (above it when ``above``)."""

    low: float = 0
    above: bool = False
    high: float | None = None
    unit: str = "a number"

    @property
    def expected(self) -> str:  # type: ignore[override]
        """What a good value looks like."""
        if self.high is not None:
            return f"{self.unit} from {self.low:g} to {self.high:g}"
        return f"{self.unit} {'above' if self.above else 'of at least'} {self.low:g}"

    def parse(self, value: Any) -> float:
        """A ``float``."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or number < self.low or (self.above and number == self.low):
            raise ValueError
        if self.high is not None and number > self.high:
            raise ValueError
        return number

    def text(self, value: Any) -> str:
        """Without a needless ``.0``."""
        return _number_text(value)


class Bool(Kind):
    """``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``; nothing else."""

    expected = "true or false (or 1/0, yes/no, on/off)"
    WORDS = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}

    def parse(self, value: Any) -> bool:
        """A ``bool``."""
        if isinstance(value, bool):
            return value
        if not isinstance(value, str) or value.strip().lower() not in self.WORDS:
            raise ValueError
        return self.WORDS[value.strip().lower()]

    def text(self, value: Any) -> str:
        """``true`` or ``false``."""
        return "true" if value else "false"


@dataclass(frozen=True)
class Text(Kind):
    """Free text (``choices``: one of them, case-insensitive, kept as the choice is written)."""

    choices: tuple[str, ...] = ()
    required: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        """What a good value looks like."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return "some text" if self.required else "text"

    def parse(self, value: Any) -> str:
        """A ``str``."""
        if not isinstance(value, str):
            raise ValueError
        text = value.strip()
        if self.choices:
            match = [c for c in self.choices if c.upper() == text.upper()]
            if not match:
                raise ValueError
            text = match[0]
        if self.required and not text:
            raise ValueError
        return text


@dataclass(frozen=True)
class RateLimit(Kind):
    """A rate in the ``limits`` library's notation: ``20/minute``, ``100 per hour``."""

    expected = "a rate such as 20/minute or 100 per hour"

    def parse(self, value: Any) -> str:
        """The rate as given (checked by ``limits.parse``)."""
        from limits import parse as parse_rate

        if not isinstance(value, str):
            raise ValueError
        parse_rate(value.strip())  # ValueError when it is not a rate
        return value.strip()


@dataclass(frozen=True)
class Url(Kind):
    """A URL with one of ``schemes`` and a host (``local``: or a plain path; ``empty`` allowed)."""

    schemes: tuple[str, ...]
    expected: str = "a URL"  # type: ignore[assignment]
    empty: bool = False
    local: bool = False
    needs_host: bool = True

    def parse(self, value: Any) -> str:
        """The URL as text, stripped (and without a trailing ``/`` for http URLs)."""
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise ValueError
        url = value.strip()
        if not url:
            if self.empty:
                return ""
            raise ValueError
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.lower() not in self.schemes:
            if self.local and "://" not in url:
                return url
            raise ValueError
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError from None
        if self.needs_host and not parts.hostname:
            raise ValueError
        return url.rstrip("/") if scheme.lower() in ("http", "https") else url


class DatabaseUrl(Kind):
    """An SQLAlchemy URL of SQLite or PostgreSQL."""

    expected = "an SQLAlchemy URL: sqlite:///<file> or postgresql+psycopg://user:pass@host/db"

    def parse(self, value: Any) -> str:
        """The URL as text."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not isinstance(value, str):
            raise ValueError
        try:
            backend = make_url(value.strip()).get_backend_name()
        except ArgumentError:
            raise ValueError from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError
        return value.strip()


class PathKind(Kind):
    """A file or directory path (``~`` expanded; made absolute by :func:`build`)."""

    expected = "a path"

    def parse(self, value: Any) -> Path:
        """A ``Path``."""
        if not isinstance(value, str | os.PathLike) or not os.fspath(value).strip():
            raise ValueError
        return Path(os.fspath(value).strip()).expanduser()


class OptionalPath(PathKind):
    """A path, or empty for none."""

    expected = "a path, or empty"

    def parse(self, value: Any) -> Path | None:
        """A ``Path`` or ``None``."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return super().parse(value)

    def text(self, value: Any) -> str:
        """Empty for none."""
        return "" if value is None else str(value)


class Keys(Kind):
    """Comma-separated keys (or a list), blanks dropped."""

    expected = "comma-separated keys"
    secret = True

    def parse(self, value: Any) -> tuple[str, ...]:
        """A tuple of keys (possibly empty)."""
        items = value.split(",") if isinstance(value, str) else list(value or ())
        return tuple(str(k).strip() for k in items if str(k).strip())

    def text(self, value: Any) -> str:
        """Comma-separated."""
        return ",".join(value)


class EncryptionKeys(Keys):
    """Comma-separated AES-256 keys (32 bytes each, URL-safe base64), newest first."""

    expected = "comma-separated keys of 32 bytes in URL-safe base64 (`sharewise keys generate`)"

    def parse(self, value: Any) -> tuple[str, ...]:
        """The keys as given, each checked."""
        from sharewise.plugin.crypto import parse_key

        keys = super().parse(value)
        for key in keys:
            parse_key(key)  # ValueError when it is not one
        return keys


class JsonObject(Kind):
    """A JSON object (or a mapping), kept read-only."""

    expected = 'a JSON object, e.g. {"visibility_timeout": 3600}'

    def parse(self, value: Any) -> Mapping[str, Any]:
        """A read-only mapping."""
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, Mapping):
            raise ValueError
        return MappingProxyType(dict(value))

    def text(self, value: Any) -> str:
        """As JSON."""
        return json.dumps(dict(value))


class Seconds(Kind):
    """Comma-separated seconds (or a list, or a JSON list), each 0 or more, at least one."""

    expected = "comma-separated seconds, each 0 or more (e.g. 0,5,300)"

    def parse(self, value: Any) -> tuple[float, ...]:
        """A tuple of seconds."""
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else text.split(",")
        elif isinstance(value, Sequence):
            items = list(value)
        else:
            raise ValueError
        out = tuple(Number().parse(str(v).strip()) for v in items if str(v).strip())
        if not out:
            raise ValueError
        return out

    def text(self, value: Any) -> str:
        """Comma-separated."""
        return ",".join(_number_text(v) for v in value)


# ------------------------------------------------------------------------------ the settings


def setting(default: str, doc: str, kind: Kind) -> Any:
    """One field of :class:`Settings`: its default (as text), its documentation, its kind."""
    return field(metadata={"default": default, "doc": doc, "kind": kind})


SECONDS = Number(0, above=True, unit="a number of seconds")
SECONDS_OR_0 = Number(0, unit="a number of seconds")
COUNT = Int(1)


@dataclass(frozen=True)
class Settings:
    """Every setting, typed. Field ``x`` is ``SHAREWISE_X`` and ``app.config["X"]``."""

    data_dir: Path = setting(
        "./var", "Directory for the embedded default: SQLite database, broker queue, file "
        "store, secret key, demo tenants file. A relative path is taken from the directory the "
        "command starts in. Only `serve`, `web`, `worker`, `beat` and `db upgrade` create it.",
        PathKind())
    tenants: Path = setting(
        "{DATA_DIR}/tenants.toml", "The tenants file (TOML), re-read when it changes. When it "
        "does not exist, `sharewise serve` writes a demo one at this default path (a file named "
        "in SHAREWISE_TENANTS must exist).", PathKind())
    database_url: str = setting(
        "sqlite:///{DATA_DIR}/sharewise.db",
        "SQLAlchemy URL: SQLite (embedded) or `postgresql+psycopg://user:pass@host/db`.",
        DatabaseUrl())
    broker_url: str = setting(
        "sqla+sqlite:///{DATA_DIR}/broker.db", "Celery broker: `sqla+sqlite:///<file>` "
        "(embedded: kombu's SQLAlchemy transport on a SQLite file of its own), `redis://...` "
        "or `amqp://...`. (`filesystem://<dir>`, kombu's filesystem transport, is still read "
        "but not safe with several processes: kombu issue 1551.)",
        Url(("sqla+sqlite", "filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp",
             "memory"),
            "a broker URL: sqla+sqlite:///<file>, redis://... or amqp://...", needs_host=False))
    broker_transport_options: Mapping[str, Any] = setting(
        "{}", "Extra options of the broker's kombu transport, as a JSON object (for Redis, e.g. "
        '`{"visibility_timeout": 3600}` or a `global_keyprefix`).', JsonObject())
    base_url: str = setting(
        "http://127.0.0.1:{PORT}",
        "Public base URL of every link Sharewise hands out (no trailing slash).",
        Url(("http", "https"), "an http:// or https:// URL"))
    host: str = setting(
        "127.0.0.1", "Listening address of `sharewise serve` / `sharewise web` (also `--host`).",
        Text(required=True))
    port: int = setting(
        "8000", "Listening port of `sharewise serve` / `sharewise web` (also `--port`).",
        Int(1, 65535))
    storage_url: str = setting(
        "{DATA_DIR}/files", "File store for PDFs: a local directory (path or `file://` URL) or "
        "`s3://bucket/prefix`.",
        Url(("s3", "file"), "a directory, a file:// URL or s3://bucket/prefix", local=True,
            needs_host=False))
    s3_endpoint_url: str = setting(
        "", "Endpoint of a non-AWS S3-compatible store (MinIO, Ceph...) for an `s3://` "
        "STORAGE_URL. Empty: AWS.",
        Url(("http", "https"), "an http:// or https:// URL, or empty", empty=True))
    smtp_url: str = setting(
        "", "Outgoing mail: `smtp://user:pass@host:port`, `smtp+starttls://...` or "
        "`smtps://...`. Empty: mail is printed to the log (console backend).",
        Url(("smtp", "smtp+starttls", "smtps", "console"),
            "empty, console:// or an smtp://, smtp+starttls:// or smtps:// URL with a host",
            empty=True))
    mail_from: str = setting(
        "sharewise@localhost", "Sender address of Sharewise's emails.", Text(required=True))
    secret_keys: tuple[str, ...] = setting(
        "", "Comma-separated keys for signing practitioner links; the FIRST signs, all verify "
        "(prepend a new key to rotate). Empty: a random key generated once into "
        "{DATA_DIR}/secret_key.", Keys())
    admin_tokens: tuple[str, ...] = setting(
        "", "Comma-separated tokens that sign in to the read-only overview at /admin (a token "
        "may also be the password of HTTP basic credentials). Empty: /admin is off. Use long "
        "random values (`sharewise keys generate` makes one).", Keys())
    webhook_failures_per_address: str = setting(
        "20/minute", "Failed webhook signatures (or unknown tenants) one client address may "
        "send; beyond it every webhook from that address gets 429 until the rate falls.",
        RateLimit())
    webhook_failures_per_tenant: str = setting(
        "100/minute", "Failed webhook signatures one tenant's endpoint takes; beyond it a "
        "failing one gets 429 instead of 401 (correctly signed events are still accepted).",
        RateLimit())
    rate_limit_storage_url: str = setting(
        "memory://", "Where the failure counts are kept: `memory://` (each web process counts "
        "alone) or `redis://host:port/db` (shared by every web process).",
        Url(("memory", "redis", "rediss"), "memory:// or a redis:// URL", needs_host=False))
    trusted_proxies: int = setting(
        "0", "Reverse proxies in front of the web processes whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` are believed (0: none; the client address is the connection's). "
        "The audit trail keeps a keyed hash of the client address, never the address.", Int(0))
    encryption_keys: tuple[str, ...] = setting(
        "", "Comma-separated keys that encrypt the stored PDFs and the personal fields of the "
        "database (AES-256-GCM); the FIRST encrypts, all decrypt (prepend a new key, then run "
        "`sharewise keys rotate`). Empty: a key generated once into {DATA_DIR}/encryption_key "
        "(back it up: without it nothing stored can be read).", EncryptionKeys())
    link_max_age: int = setting(
        "2592000", "Lifetime of practitioner links, in seconds (default 30 days).", COUNT)
    max_body_bytes: int = setting(
        "12582912", "Largest accepted webhook or upload body, in bytes (default 12 MB); larger "
        "bodies get 413.", COUNT)
    webhook_tolerance: int = setting(
        "300", "Largest accepted age (or clock skew into the future) of a webhook's timestamp, "
        "in seconds.", COUNT)
    intake_timeout: float = setting(
        "30", "Longest an intake waits for the database's write lock, in seconds; then 503 "
        "with Retry-After and nothing stored.", SECONDS)
    migrate_on_start: bool = setting(
        "true", "Apply database migrations (`upgrade head`) when a process starts; safe with "
        "several processes.", Bool())
    web_workers: int = setting(
        "2", "gunicorn worker processes of `sharewise web` / `serve`.", COUNT)
    web_threads: int = setting(
        "2", "gunicorn threads per worker process. Two keep a web worker busy while one request "
        "waits; on SQLite, where writes take turns, more only contend for the write lock and "
        "Python's GIL (measured in docs/performance.md, fifth run).", COUNT)
    web_max_requests: int = setting(
        "500", "Requests a gunicorn worker serves before it is replaced by a fresh fork of the "
        "preloaded master (with up to 10 % random jitter), which returns the memory its heap "
        "grew by; 0 never replaces one.", Int(0))
    worker_concurrency: int = setting(
        "2", "Tasks one Celery worker runs at once: pool processes of `sharewise worker`, "
        "threads of the one worker `serve` runs.", COUNT)
    reader_workers: int = setting(
        "2", "Most PDF reader processes (the upload sandbox) each web process runs at once; "
        "they start when uploads need them.", COUNT)
    reader_idle_seconds: float = setting(
        "60", "A PDF reader process with no upload for this many seconds stops (the next "
        "upload starts one again, in about a third of a second).", SECONDS)
    retention_sweep_interval: float = setting(
        "3600", "Seconds between the beat sweeps that delete the PDFs and personal fields of "
        "finished records past their tenant's retention_days.", SECONDS)
    sweep_interval: float = setting(
        "60", "Seconds between Celery beat sweeps that re-enqueue work that is due and not done.",
        SECONDS)
    log_level: str = setting(
        "INFO", "Log level of every process.",
        Text(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")))
    metrics_dir: Path = setting(
        "{DATA_DIR}/metrics", "Where the processes of one machine (gunicorn's workers, the "
        "Celery worker) write their metric samples for /metrics to add up (prometheus-client's "
        "multiprocess mode; exported as PROMETHEUS_MULTIPROC_DIR). `serve` empties it at start.",
        PathKind())
    log_format: str = setting(
        "json", "Log lines of every process: json (one object per line: time, level, logger, "
        "message, and the record id, tenant, event, status and duration where they apply) "
        "or text (for reading in a terminal). Neither holds personal data.",
        Text(("json", "text")))
    delivery_timeout: float = setting(
        "15", "Seconds one post-back attempt to a host may take (connect, send, answer) before "
        "it counts as a timeout and is retried.", SECONDS)
    delivery_schedule: tuple[float, ...] = setting(
        STANDARD_SCHEDULE,
        "Seconds before each post-back attempt, comma-separated (the first "
        "is the immediate one); the default is the Standard Webhooks schedule. After the last "
        "attempt a delivery is dead-lettered.", Seconds())
    delivery_schedule_scale: float = setting(
        "1", "Factor applied to every delay of DELIVERY_SCHEDULE (tests and demos shrink the "
        "schedule with it); a host's Retry-After is never scaled.",
        Number(0, unit="a factor"))
    delivery_jitter: float = setting(
        "0.1", "Relative random jitter on each retry delay (0.1 = plus or minus 10 %).",
        Number(0, high=1, unit="a fraction"))
    delivery_max_retry_after: float = setting(
        "86400", "Longest Retry-After (seconds) a host may ask for; a longer one is cut to this.",
        SECONDS_OR_0)
    delivery_lease: float = setting(
        "120", "Seconds a worker holds a delivery while sending it; after that the sweep hands "
        "it to another worker (its first worker is presumed dead). Kept above DELIVERY_TIMEOUT.",
        SECONDS)
    delivery_requeue_after: float = setting(
        "300", "The sweep hands a due delivery to the broker again only if it was last handed "
        "over at least this many seconds ago (covers messages the broker lost).", SECONDS_OR_0)
    delivery_countdown_max: float = setting(
        "60", "Retries due within this many seconds are sent with a short broker countdown; "
        "later ones are left to the sweep (no long eta on the broker).", SECONDS_OR_0)
    delivery_sweep_interval: float = setting(
        "30", "Seconds between the beat sweeps that re-enqueue due post-backs (read by "
        "`sharewise beat` / `serve` at start).", SECONDS)
    delivery_sweep_batch: int = setting(
        "500", "Most deliveries one sweep re-enqueues.", COUNT)
    delivery_max_response_bytes: int = setting(
        "65536", "Most bytes of a host's answer Sharewise reads (the rest is dropped).", COUNT)
    smtp_timeout: float = setting(
        "10", "Seconds each step of an SMTP conversation (connect, TLS, login, send) may take "
        "before the email counts as not sent and is retried.", SECONDS)
    smtp_ca_file: Path | None = setting(
        "", "PEM file of the certificate authority that signed the SMTP server's certificate, "
        "when it is not in the system store (STARTTLS and smtps:// always verify the "
        "certificate).", OptionalPath())
    reminder_scan_interval: float = setting(
        "60", "Seconds between the beat scans that send due reminders and the managers' daily "
        "digests (read by `sharewise beat` / `serve` at start).", SECONDS)
    reminder_scan_batch: int = setting(
        "500", "Due reminders one scan reads per query (a scan loops over batches, up to "
        "REMINDER_SCAN_MAX).", COUNT)
    reminder_scan_max: int = setting(
        "20000", "Most reminders one scan handles; the next scan carries on.", COUNT)
    reminder_lease: float = setting(
        "600", "Seconds a reminder handed to a worker is left to it; if it is still not sent "
        "after that (lost message, dead worker, retries given up), the next scan hands it out "
        "again.", SECONDS)
    reminder_sending_lease: float = setting(
        "120", "Seconds a worker may spend on one SMTP send; no other worker sends the same "
        "reminder meanwhile (kept well above SMTP_TIMEOUT).", SECONDS)
    reminder_retry_base: float = setting(
        "2", "First retry delay (seconds) of a reminder whose SMTP send failed for a transient "
        "reason; doubled on each retry, with jitter.", SECONDS)
    reminder_retry_cap: float = setting(
        "60", "Longest retry delay (seconds) of a reminder send (short broker countdowns only; "
        "the scan covers longer outages).", SECONDS)
    reminder_max_retries: int = setting(
        "12", "Retries of one reminder send task; after that it gives the reminder back and the "
        "next scan enqueues it again (so nothing is lost however long the mail server is down).",
        Int(0))

    def as_config(self) -> dict[str, Any]:
        """``{"DATA_DIR": ..., ...}``: the typed values under their ``app.config`` keys."""
        return {f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self)}

    def environment(self) -> dict[str, str]:
        """``SHAREWISE_*`` variables that rebuild these settings in a child process."""
        return {d.env: d.kind.text(getattr(self, d.name)) for d in definitions()}

    def signing_keys(self) -> tuple[str, ...]:
        """The link-signing keys: ``secret_keys``, else the key kept in ``DATA_DIR``."""
        return self.secret_keys or (ensure_secret_key(self.data_dir),)

    def encryption_key_list(self) -> tuple[str, ...]:
        """The encryption keys: ``encryption_keys``, else the key kept in ``DATA_DIR``."""
        return self.encryption_keys or (ensure_encryption_key(self.data_dir),)

    def uses_data_dir(self) -> bool:
        """Whether anything is kept in ``DATA_DIR`` (the embedded default, or part of it)."""
        inside = str(self.data_dir)
        return not self.secret_keys or not self.encryption_keys or any(
            inside in value for value in (self.database_url, self.broker_url, self.storage_url))


@dataclass(frozen=True)
class Definition:
    """One documented setting, as the README table and the parser see it."""

    name: str
    default: str
    doc: str
    kind: Kind

    @property
    def key(self) -> str:
        """``app.config`` key (``DATA_DIR``)."""
        return self.name.upper()

    @property
    def env(self) -> str:
        """The environment variable (``SHAREWISE_DATA_DIR``)."""
        return f"{ENV_PREFIX}_{self.key}"


_DEFINITIONS = tuple(
    Definition(f.name, f.metadata["default"], f.metadata["doc"], f.metadata["kind"])
    for f in dataclasses.fields(Settings)
)
KEYS = frozenset(d.key for d in _DEFINITIONS)


def definitions() -> tuple[Definition, ...]:
    """Every setting, in table order."""
    return _DEFINITIONS


def defaults() -> dict[str, str]:
    """The default of every setting, as text (placeholders not yet filled)."""
    return {d.key: d.default for d in _DEFINITIONS}


# ------------------------------------------------------------------------------ building


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _shown(definition: Definition, value: Any) -> str:
    if definition.kind.secret:
        return "(hidden)"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(mask_url(text)) if isinstance(text, str) else repr(text)


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else path.resolve()


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL; ``None`` for another backend, memory or a URI name."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if (parsed.get_backend_name() != "sqlite" or database in ("", ":memory:")
            or database.startswith("file:")):
        return None
    return Path(database)


def _absolute_sqlite(url: str) -> str:
    from sqlalchemy.engine import make_url

    file = sqlite_file(url)
    if file is None or file.is_absolute():
        return url
    return make_url(url).set(database=str(file.resolve())).render_as_string(False)


def _absolute_local(url: str, scheme: str, empty_default: Path) -> str:
    prefix = f"{scheme}://" if scheme else ""
    if prefix and not url.startswith(prefix):
        return url
    path = url[len(prefix):]
    resolved = _absolute(Path(path).expanduser()) if path else empty_default
    return f"{prefix}{resolved}"


def build(config: Mapping[str, Any] | None = None,
          environ: Mapping[str, str] | None = None) -> Settings:
    """The settings: defaults, then ``config`` (keys such as ``"PORT"``), then ``environ``
    (default :data:`os.environ`, ``SHAREWISE_PORT``...). Raises :class:`SettingsError`."""
    config = config or {}
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for d in _DEFINITIONS:
        value: Any = d.default
        if not _unset(config.get(d.key)):
            value = config[d.key]
        if not _unset(environ.get(d.env)):
            value = environ[d.env]
        raw[d.name] = value

    values: dict[str, Any] = {}

    def parse(d: Definition) -> Any:
        value = raw[d.name]
        if isinstance(value, str) and values:
            value = value.replace("{DATA_DIR}", str(values["data_dir"]))
            value = value.replace("{PORT}", str(values.get("port", "{PORT}")))
        try:
            return d.kind.parse(value)
        except (ValueError, TypeError, json.JSONDecodeError):
            raise SettingsError(
                f"{d.env} must be {d.kind.expected}, got {_shown(d, raw[d.name])}") from None

    by_name = {d.name: d for d in _DEFINITIONS}
    values["data_dir"] = _absolute(parse(by_name["data_dir"]))
    values["port"] = parse(by_name["port"])
    for d in _DEFINITIONS:
        if d.name not in values:
            values[d.name] = parse(d)
    values["tenants"] = _absolute(values["tenants"])
    values["metrics_dir"] = _absolute(values["metrics_dir"])
    if values["smtp_ca_file"] is not None:
        values["smtp_ca_file"] = _absolute(values["smtp_ca_file"])
    values["database_url"] = _absolute_sqlite(values["database_url"])
    values["broker_url"] = _absolute_local(values["broker_url"], "filesystem",
                                           values["data_dir"] / "broker")
    if values["broker_url"].startswith(SQLA_SQLITE):
        values["broker_url"] = "sqla+" + _absolute_sqlite(values["broker_url"][len("sqla+"):])
    if not values["storage_url"].startswith("s3://"):
        scheme = "file" if values["storage_url"].startswith("file://") else ""
        values["storage_url"] = _absolute_local(values["storage_url"], scheme,
                                                values["data_dir"] / "files")
    return Settings(**values)


def ensure_secret_key(data_dir: Path) -> str:
    """The embedded default link-signing key: generated once into ``DATA_DIR/secret_key``."""
    return _key_file(data_dir / "secret_key", lambda: secrets.token_urlsafe(48))


def ensure_encryption_key(data_dir: Path) -> str:
    """The embedded default encryption key: generated once into ``DATA_DIR/encryption_key``
    (readable by its owner only), with a warning the first time."""
    from sharewise.plugin.crypto import generate_key

    return _key_file(data_dir / "encryption_key", generate_key, announce=(
        "generated an encryption key into %s (set SHAREWISE_ENCRYPTION_KEYS to use your own); "
        "back it up with the database: without it the stored records cannot be read"))


def _key_file(path: Path, make: Callable[[], str], announce: str | None = None) -> str:
    """The key in ``path``, made by ``make`` the first time.

    Safe when several processes start at once: the key is written to a temporary file and
    hard-linked into place, so every process reads the same complete key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            else:
                if announce:
                    logging.getLogger(__name__).warning(announce, path)
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


# ------------------------------------------------------------------------------ apps


def settings_of(app: Flask | None = None) -> Settings:
    """The settings of ``app`` (default: the current app)."""
    return (app or current_app).extensions[EXTENSION]


def install(app: Flask, settings: Settings) -> None:
    """Make ``settings`` the app's: ``app.extensions`` and the typed values in ``app.config``
    (plus Flask's ``SECRET_KEY`` unless given, and ``MAX_CONTENT_LENGTH``)."""
    app.extensions[EXTENSION] = settings
    app.config.update(settings.as_config())
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.secret_keys[0] if settings.secret_keys else None
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes


def update(app: Flask, **changes: Any) -> Settings:
    """Change settings of a running app (tests): ``update(app, reminder_max_retries=5)``."""
    settings = dataclasses.replace(settings_of(app), **changes)
    app.extensions[EXTENSION] = settings
    app.config.update({name.upper(): value for name, value in changes.items()})
    return settings


def markdown_table() -> str:
    """The settings table for the README."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for d in _DEFINITIONS:
        default = f"`{d.default}`" if d.default != "" else "(empty)"
        rows.append(f"| `{d.env}` | {default} | {d.doc} |")
    return "\n".join(rows)
