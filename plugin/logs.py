"""Process-wide logging: one line per entry, JSON (the default) or plain text, with nothing
personal in it.

Every Sharewise process (gunicorn's web workers, the Celery worker and beat, the commands)
formats its log through :func:`formatter`, so a log collector reads one shape everywhere:

``{"time": "2026-12-06T22:41:03.120Z", "level": "INFO", "logger": "...", "message": "...",
"record": "rec_...", "tenant": "northshire", "event": "share.requested", "status": "201",
"duration_ms": 12.5}``

The fields after ``message`` come from a log call's ``extra=`` (:func:`fields` builds it); a
line has only the ones that apply. What may be in a line: record, delivery and reminder ids,
tenant slugs, event types, states, counts, durations, exception type names. What never is:
names, dates of birth, answers, email addresses, client addresses, link tokens, secrets. The
code logs only the first kind; two guards catch a slip:

- **exceptions** are written as their type and the place they were raised
  (``IntegrityError at plugin/x.py:120 in f``), never with their message or a traceback: a
  database error's message quotes the row's values, a parser's quotes the input.
- **link tokens** after a link path (``/form/<token>``) are replaced in every message
  (:func:`redact_text`).

``SHAREWISE_LOG_FORMAT=text`` gives ``time level logger: message key=value...`` for a person
reading a terminal; the same guards apply.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName", "color_message"}
#: Libraries whose INFO lines are routine chatter (Alembic: "Context impl SQLiteImpl", "Will
#: assume transactional DDL", "Running upgrade ..."); the app logs one line of its own instead.
QUIET_LOGGERS = ("alembic",)
_ROOT = Path(__file__).resolve().parents[1]
#: ``/<first segment>/<token>``: the link paths of :mod:`sharewise.plugin.links`.
_TOKEN_PATH = re.compile(r"^(/(?:form|upload|status)/)[^/?\s]+")
#: The same paths anywhere in a message (gunicorn quotes a bad request line in its error log).
_TOKEN_ANYWHERE = re.compile(r"(/(?:form|upload|status)/)[^/?\s'\"]+")


def redact(path: str | None) -> str | None:
    """``path`` with a link token replaced by ``<token>``."""
    return _TOKEN_PATH.sub(r"\1<token>", path) if path else path


def redact_text(text: str) -> str:
    """``text`` with every link token after a link path replaced by ``<token>``."""
    return _TOKEN_ANYWHERE.sub(r"\1<token>", text)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the keyword arguments that are not ``None``."""
    return {k: v for k, v in values.items() if v is not None}


def describe_exception(exc_info: Any) -> str:
    """``Type at file:line in function`` for an ``exc_info`` tuple: where it was raised, not
    what it said (an exception's message may quote personal data)."""
    kind, _value, tb = exc_info
    name = getattr(kind, "__name__", "Exception")
    frames = traceback.extract_tb(tb) if tb is not None else []
    if not frames:
        return name
    last = frames[-1]
    try:
        where = Path(last.filename).resolve().relative_to(_ROOT)
    except ValueError:
        where = Path(last.filename).name
    return f"{name} at {where}:{last.lineno} in {last.name}"


class _Guarded:
    """The two guards, shared by both formatters."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return describe_exception(ei)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return ""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = redact_text(record.message)
        return super().formatMessage(record)  # type: ignore[misc]


class JsonLines(_Guarded, JsonFormatter):
    """One JSON object per line (python-json-logger), guarded."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "error"},
            json_ensure_ascii=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        """The entry as one JSON line (an exception text another formatter cached is not
        reused: it is made again, guarded)."""
        record.exc_text = None
        return super().format(record)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        """``time`` first (UTC, milliseconds), then python-json-logger's fields."""
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        """Redact the message (python-json-logger takes it from ``getMessage``)."""
        if isinstance(log_record.get("message"), str):
            log_record["message"] = redact_text(log_record["message"])
        return log_record


class TextLines(_Guarded, logging.Formatter):
    """``time level logger: message key=value...``, guarded."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, then the entry's fields as ``key=value``."""
        line = super().format(record)
        extra = [f"{k}={v}" for k, v in vars(record).items()
                 if k not in _STANDARD and not k.startswith("_")]
        return " ".join([line, *extra]) if extra else line


class ExceptionTypeOnly(logging.Filter):
    """For Celery's task-trace logger: a failed or retried task's line ("Task ... raised
    unexpected: %(exc)s") names the exception's type, not its message, and the ``data`` it
    attaches (the exception, its traceback, the task's arguments) keeps only the task's id,
    name and what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Cut the ``exc`` argument to its type name; cut ``data`` to id, name, description."""
        args = record.args
        if isinstance(args, dict) and "exc" in args:
            exc = str(args["exc"])
            record.args = {**args, "exc": re.split(r"[(:\s]", exc, maxsplit=1)[0] or "error",
                           "traceback": "", "args": "", "kwargs": ""}
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            record.data = {k: data[k] for k in ("id", "name", "description") if k in data}
        return True


class DemoteToDebug(logging.Filter):
    """Logs the records ``routine`` picks (a line a process writes over and over: beat's sends,
    the sweeps' task lines) at DEBUG, shown only when their logger is at DEBUG; every other
    record passes as it is."""

    def __init__(self, routine: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__()
        self.routine = routine

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a routine record; keep it only when its logger is enabled for DEBUG."""
        if self.routine(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of the log format ``fmt`` (``json`` or ``text``)."""
    return JsonLines() if fmt == "json" else TextLines()


def use_format(logger: logging.Logger, fmt: str) -> None:
    """Give each of ``logger``'s handlers the formatter of ``fmt`` (Celery's and gunicorn's
    handlers, once they have set them up)."""
    for handler in logger.handlers:
        handler.setFormatter(formatter(fmt))


def configure(level: str, fmt: str) -> None:
    """This process's logging: a stderr handler on the root logger in ``fmt``, at ``level``
    (a handler another server installed, Celery's or pytest's, is given the format instead);
    Python warnings go through it too."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(formatter(fmt))
        root.addHandler(handler)
        root.setLevel(level.upper())
    else:
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler:  # not pytest's capturing handlers
                handler.setFormatter(formatter(fmt))
    logging.captureWarnings(True)  # a library's warning is a log line in the same format
    if level.upper() != "DEBUG":
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
