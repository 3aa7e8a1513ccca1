"""``sharewise reminders scan [--now]`` and ``schedule-missing``, configured by environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import delete, func, select

from sharewise.plugin.cli import main
from sharewise.plugin.db import session_scope
from sharewise.plugin.reminders.models import Reminder


def env_of(config, **overrides):
    env = {}
    for key, value in {**config, **overrides}.items():
        if key != "TESTING":
            env[f"SHAREWISE_{key}"] = (json.dumps(value) if isinstance(value, dict | list | bool)
                                       else str(value))
    env["SHAREWISE_MIGRATE_ON_START"] = "false"
    return env


def test_scan_now_in_the_future_sends_what_would_be_due(app, app_config, smtp, make_record):
    due = datetime.now(UTC) + timedelta(days=3)
    make_record(due_at=due, case_reference="CASE-CLI")
    runner = CliRunner()
    out = runner.invoke(main, ["reminders", "scan"], env=env_of(app_config))
    assert out.exit_code == 0, out.output
    assert "0 request or reminder email(s) to send" in out.output and smtp.received == []
    later = (due + timedelta(minutes=1)).isoformat()
    out = runner.invoke(main, ["reminders", "scan", "--now", later], env=env_of(app_config))
    assert out.exit_code == 0, out.output
    assert "1 request or reminder email(s) to send, 1 skipped" in out.output
    assert "1 sent" in out.output
    [mail] = smtp.wait_for(1)
    assert mail.subject.endswith("is due now") and "CASE-CLI" in mail.part("plain")


def test_console_backend_prints_the_reminder(app, app_config, make_record):
    make_record(due_at=datetime.now(UTC) - timedelta(hours=1), case_reference="CASE-DEMO")
    out = CliRunner().invoke(main, ["reminders", "scan"], env=env_of(app_config, SMTP_URL=""))
    assert out.exit_code == 0, out.output
    assert "sharewise mail (console backend: printed, not sent)" in out.output
    assert "Subject: Information-sharing record SR-" in out.output
    assert "CASE-DEMO" in out.output and "is due now" in out.output
    assert "=\n" not in out.output  # readable text, not quoted-printable


def test_bad_now_is_a_clear_usage_error(app, app_config):
    out = CliRunner().invoke(main, ["reminders", "scan", "--now", "next tuesday"],
                             env=env_of(app_config))
    assert out.exit_code == 2 and "ISO-8601" in out.output


def test_schedule_missing(app, app_config, make_record):
    rid = make_record(due_at=datetime.now(UTC) + timedelta(days=1))
    make_record(due_at=datetime.now(UTC) + timedelta(days=1), status="complete")
    with session_scope(app) as s:
        s.execute(delete(Reminder))
    out = CliRunner().invoke(main, ["reminders", "schedule-missing"], env=env_of(app_config))
    assert out.exit_code == 0 and "for 1 record(s)" in out.output, out.output
    with session_scope(app) as s:
        assert s.scalar(select(func.count()).select_from(Reminder)
                        .where(Reminder.record_id == rid)) == 4
        assert s.scalar(select(func.count()).select_from(Reminder)) == 4
    out = CliRunner().invoke(main, ["reminders", "schedule-missing"], env=env_of(app_config))
    assert "for 0 record(s)" in out.output
