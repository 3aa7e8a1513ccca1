"""The mail backends against a real SMTP server on loopback (aiosmtpd): plain + AUTH, STARTTLS,
implicit TLS, downtime, refusals and timeouts, and the console backend."""

import io
import logging
import time

import pytest

from sharewise.plugin.mail import (
    ConsoleBackend,
    PermanentMailError,
    TransientMailError,
    backend_from_config,
    make_message_id,
    parse_smtp_url,
    send_mail,
)
from tests.smtp import SmtpSink, make_self_signed


@pytest.fixture
def sink():
    s = SmtpSink(credentials=("mailer", "s3cret pw"))
    s.start()
    yield s
    s.stop()


def config_for(url, **extra):
    return {"SMTP_URL": url, "MAIL_FROM": "sharewise@council.example", "SMTP_TIMEOUT": 2, **extra}


def test_parse_smtp_url_forms():
    s = parse_smtp_url("smtp://u%40x:p%3Aw@mail.example:2525")
    assert (s.host, s.port, s.security, s.username, s.password) == (
        "mail.example", 2525, "plain", "u@x", "p:w")
    assert parse_smtp_url("smtp+starttls://mail.example").port == 587
    assert parse_smtp_url("smtps://mail.example").security == "tls"
    assert parse_smtp_url("smtps://mail.example").port == 465
    assert parse_smtp_url("") is None
    assert parse_smtp_url("console://") is None
    assert "hunter2" not in repr(parse_smtp_url("smtp://u:hunter2@h"))


def test_parse_smtp_url_errors_do_not_echo_the_url():
    with pytest.raises(ValueError) as err:
        parse_smtp_url("http://user:hunter2@mail.example")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="no host"):
        parse_smtp_url("smtp://")


def test_message_id_is_derived_from_the_key():
    a = make_message_id("reminder:SR-1:due+0:practitioner", "Sharewise <sw@council.example>")
    assert a == make_message_id("reminder:SR-1:due+0:practitioner", "sw@council.example")
    assert a != make_message_id("reminder:SR-1:due+0:manager", "sw@council.example")
    assert a.startswith("<sharewise.") and a.endswith("@council.example>")
    assert "SR-1" not in a


def test_plain_smtp_with_auth_delivers_both_parts(sink):
    url = sink.url(user="mailer", password="s3cret%20pw")
    mid = make_message_id("k1", "sharewise@council.example")
    send_mail(config_for(url), "pat@team.example", "Subject here", "plain body",
              html="<p>html body</p>", message_id=mid)
    [got] = sink.wait_for(1)
    assert got.rcpt_tos == ["pat@team.example"]
    assert got.mail_from == "sharewise@council.example"
    assert got.message_id == mid
    assert got.subject == "Subject here"
    assert got.part("plain").strip() == "plain body"
    assert got.part("html").strip() == "<p>html body</p>"


def test_wrong_password_is_transient_and_sends_nothing(sink):
    with pytest.raises(TransientMailError, match="authentication"):
        send_mail(config_for(sink.url(user="mailer", password="nope")), "a@b.example", "s", "t")
    assert sink.received == [] and sink.auth_failures >= 1


def test_server_down_is_transient_then_delivers_once_back(sink):
    url = sink.url(user="mailer", password="s3cret%20pw")
    sink.stop()
    with pytest.raises(TransientMailError, match="cannot connect"):
        send_mail(config_for(url), "a@b.example", "s", "t")
    sink.start()
    send_mail(config_for(url), "a@b.example", "s", "t")
    assert len(sink.wait_for(1)) == 1


def test_recipient_refusals_are_classified(sink):
    url = sink.url(user="mailer", password="s3cret%20pw")
    sink.rcpt_reply = "550 5.1.1 no such mailbox"
    with pytest.raises(PermanentMailError) as err:
        send_mail(config_for(url), "gone@b.example", "s", "t")
    assert err.value.code == 550 and "gone@" not in err.value.summary
    sink.rcpt_reply = "451 4.3.0 try later"
    with pytest.raises(TransientMailError):
        send_mail(config_for(url), "a@b.example", "s", "t")
    assert sink.received == []


def test_a_hanging_server_times_out(sink):
    url = sink.url(user="mailer", password="s3cret%20pw")
    sink.hold_rcpt()
    started = time.monotonic()
    with pytest.raises(TransientMailError):
        send_mail(config_for(url, SMTP_TIMEOUT=0.5), "a@b.example", "s", "t")
    assert time.monotonic() - started < 3
    sink.release()
    assert sink.received == []


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_modes_verify_the_certificate(tmp_path, mode):
    cert = make_self_signed(tmp_path)
    s = SmtpSink(credentials=("mailer", "pw"), tls=mode, cert=cert)
    s.start()
    try:
        url = s.url(user="mailer", password="pw")
        # Not trusted: the self-signed certificate is refused, nothing is sent.
        with pytest.raises(TransientMailError):
            send_mail(config_for(url), "a@b.example", "s", "t")
        send_mail(config_for(url, SMTP_CA_FILE=str(cert[0])), "a@b.example", "s", "t")
        assert len(s.wait_for(1)) == 1
    finally:
        s.stop()


def test_console_backend_prints_and_is_announced(caplog):
    caplog.set_level(logging.INFO, logger="sharewise.plugin.mail.backends")
    backend = backend_from_config({"SMTP_URL": ""})
    assert isinstance(backend, ConsoleBackend)
    out = io.StringIO()
    send_mail({"MAIL_FROM": "sw@x.example"}, "m@x.example", "Hello", "text body",
              message_id="<a@x.example>", backend=ConsoleBackend(out))
    printed = out.getvalue()
    assert "Subject: Hello" in printed and "text body" in printed
    assert "<a@x.example>" in caplog.text
    assert "text body" not in caplog.text and "m@x.example" not in caplog.text


def test_bad_smtp_url_is_a_transient_error_naming_the_problem_not_the_password():
    with pytest.raises(TransientMailError) as err:
        send_mail(config_for("smtp2://u:hunter2@h"), "a@b.example", "s", "t")
    assert "mail settings" in err.value.summary and "hunter2" not in err.value.summary
