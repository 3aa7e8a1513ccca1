"""gunicorn's logs never carry a link token: access-log atoms and error-log messages."""

import logging

from gunicorn.config import Config

from sharewise.plugin.accesslog import RedactingLogger, redact, redact_text

TOKEN = "eyJyIjoiU1ItQUJDIn0.Z2x1ZQ.c2lnbmF0dXJl"


def test_redact_path_and_free_text():
    assert redact(f"/form/{TOKEN}/pdf") == "/form/<token>/pdf"
    assert redact("/webhooks/northshire") == "/webhooks/northshire"
    text = f"Invalid request from ip=127.0.0.1: Invalid HTTP Version: 'GET /upload/{TOKEN}\\x01'"
    assert TOKEN not in redact_text(text)
    assert "/upload/<token>" in redact_text(text)


def test_error_log_messages_are_redacted(caplog):
    logger = RedactingLogger(Config())
    logger.error_log.propagate = True
    with caplog.at_level(logging.DEBUG, logger="gunicorn.error"):
        line = f"bad line 'GET /status/{TOKEN}'"
        logger.warning("Invalid request from ip=%s: %s", "127.0.0.1", line)
        logger.error(f"odd: /form/{TOKEN}")
        logger.info("plain %s", "message")
    text = caplog.text
    assert TOKEN not in text and "127.0.0.1" not in text  # nor the client's address
    assert "ip=<client>" in text
    # pytest 9 also attaches its capture to a non-propagating logger that an earlier test made:
    # a line may then be captured twice
    assert sum(line.count("<token>") for line in set(text.splitlines())) == 2
    assert "plain message" in text
