"""The service's log lines: JSON (or text) with the entry's fields, and the two guards: an
exception is its type and place only, a link token is never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from gunicorn.config import Config

from sharewise.plugin import logs
from sharewise.plugin.accesslog import RedactingLogger

SECRET = "Zebedee Quillfeather 2014-03-09"  # what an exception's message might quote
TOKEN = "eyJyIjoiU1ItQUJDIn0.Z2x1ZQ.c2lnbmF0dXJl"


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("sharewise.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out, handler
    finally:
        logger.removeHandler(handler)


def _fail() -> None:
    raise ValueError(f"duplicate key value ({SECRET})")


def test_a_json_line_has_the_entry_fields_and_no_exception_text(lines):
    logger, out, handler = lines
    handler.setFormatter(logs.formatter("json"))
    logger.info("record %s opened at /form/%s", "rec_1", TOKEN,
                extra=logs.fields(record="rec_1", tenant="northshire", status=None,
                                  duration_ms=12.5))
    try:
        _fail()
    except ValueError:
        logger.exception("could not store")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "record rec_1 opened at /form/<token>"
    assert {"level": "INFO", "logger": "sharewise.test.logs", "record": "rec_1",
            "tenant": "northshire", "duration_ms": 12.5}.items() <= first.items()
    assert "status" not in first  # None fields are left out
    assert first["time"].endswith("Z")
    assert second["error"].startswith("ValueError at tests/plugin/test_logs.py:")
    assert second["error"].endswith("in _fail")
    assert SECRET not in out.getvalue() and TOKEN not in out.getvalue()
    assert "Traceback" not in out.getvalue()


def test_a_text_line_has_key_value_fields_and_the_same_guards(lines):
    logger, out, handler = lines
    handler.setFormatter(logs.formatter("text"))
    try:
        _fail()
    except ValueError:
        logger.error("upload on /upload/%s failed", TOKEN, exc_info=True,
                     extra=logs.fields(record="rec_2"))
    text = out.getvalue()
    assert "ERROR sharewise.test.logs: upload on /upload/<token> failed" in text
    assert "record=rec_2" in text and "ValueError at tests/plugin/test_logs.py" in text
    assert SECRET not in text and TOKEN not in text and "Traceback" not in text


def test_a_failed_celery_task_line_names_the_type_only(lines):
    logger, out, handler = lines
    handler.setFormatter(logs.formatter("json"))
    logger.addFilter(logs.ExceptionTypeOnly())
    try:
        _fail()
    except ValueError as exc:
        context = {"id": "t1", "name": "sharewise.deliver", "description": "raised unexpected",
                   "exc": repr(exc), "traceback": "Traceback ...", "args": repr([SECRET]),
                   "kwargs": "{}", "hostname": "w", "internal": False}
        logger.error("Task %(name)s[%(id)s] %(description)s: %(exc)s", context,
                     exc_info=True, extra={"data": context})
    entry = json.loads(out.getvalue())
    assert entry["message"] == "Task sharewise.deliver[t1] raised unexpected: ValueError"
    assert entry["data"] == {"id": "t1", "name": "sharewise.deliver",
                             "description": "raised unexpected"}
    assert SECRET not in out.getvalue()


def test_demote_to_debug_shows_a_routine_line_only_at_debug(lines):
    """The filter of beat's and the sweeps' routine lines (tasks/worker.py): the lines it picks
    become DEBUG, kept only when the logger is at DEBUG; the others pass as they are."""
    logger, out, handler = lines
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    demote = logs.DemoteToDebug(lambda record: record.getMessage().startswith("routine"))
    logger.addFilter(demote)
    try:
        logger.info("routine sweep")
        logger.warning("something else")
        assert out.getvalue() == "DEBUG routine sweep\nWARNING something else\n"
        logger.setLevel(logging.INFO)
        logger.info("routine sweep")
        logger.info("news")
        assert out.getvalue() == "DEBUG routine sweep\nWARNING something else\nINFO news\n"
    finally:
        logger.removeFilter(demote)


def test_gunicorn_access_lines_in_json_carry_fields_and_no_client(monkeypatch):
    monkeypatch.setenv("SHAREWISE_LOG_FORMAT", "json")
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = RedactingLogger(cfg)
    out = io.StringIO()
    for handler in logger.access_log.handlers:
        if getattr(handler, "_gunicorn", False):  # gunicorn's own, not pytest's capture
            handler.setStream(out)  # type: ignore[attr-defined]

    class Resp:
        status, status_code, sent, headers = "200 OK", 200, 512, []
        response_length = 512

    class Req:
        headers: list = []

    from datetime import timedelta
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/form/{TOKEN}", "QUERY_STRING": "",
               "REMOTE_ADDR": "203.0.113.9", "SERVER_PROTOCOL": "HTTP/1.1",
               "RAW_URI": f"/form/{TOKEN}"}
    logger.access(Resp(), Req(), environ, timedelta(milliseconds=42))
    entry = json.loads(out.getvalue())
    assert {"message": "GET /form/<token> 200", "method": "GET", "path": "/form/<token>",
            "status": "200", "duration_ms": 42.0}.items() <= entry.items()
    assert TOKEN not in out.getvalue() and "203.0.113.9" not in out.getvalue()


def test_configure_formats_the_root_handler_and_warnings():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        root.handlers = [logging.StreamHandler(out)]
        logging.captureWarnings(False)  # an earlier test's app may have captured them already
        logs.configure("INFO", "json")
        logging.getLogger("sharewise.test").warning("hello", extra=logs.fields(tenant="t"))
        import warnings
        warnings.warn("a library says so", UserWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        root.handlers, _ = saved[0], root.setLevel(saved[1])
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entries[0]["tenant"] == "t"
    assert entries[1]["logger"] == "py.warnings" and "a library says so" in entries[1]["message"]
