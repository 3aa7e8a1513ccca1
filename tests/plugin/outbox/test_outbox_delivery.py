"""Deliveries end to end through a REAL Celery worker to the REAL host simulator.

The schedule is shrunk (``FAST`` in conftest) so ten attempts take well under a second; every
other part is the production path: the transactional enqueue, the after-commit hand-over to
the broker, the lease claim, the signed post, the recorded attempts and the state changes.
"""

from __future__ import annotations

import base64
import hashlib
from functools import partial
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from sharewise.plugin.db import session_scope
from sharewise.plugin.outbox.models import (
    DEAD,
    DELIVERED,
    FAILED,
    PENDING,
    RECORD_COMPLETED,
    RECORD_OVERDUE,
    SKIPPED,
    Delivery,
    TenantState,
)
from sharewise.plugin.outbox.sender import sweep
from sharewise.plugin.outbox.services import (
    build_record_overdue,
    enqueue_event,
    enqueue_record_completed,
)
from sharewise.plugin.records.models import Record
from tests import polling
from tests.plugin.outbox.conftest import load_delivery

wait_until = partial(polling.wait_until, timeout=15.0, interval=0.02)


load = load_delivery


def state_is(app: Any, public_id: str, *states: str) -> Any:
    return lambda: load(app, public_id)[0].state in states


def overdue(app: Any, record: Record, step: str = "due") -> str:
    """Write a share.record_overdue delivery in a committed transaction; return its id."""
    with session_scope(app) as s:
        r = s.get(Record, record.id)
        d = enqueue_event(
            s, tenant=r.tenant, record=r, event_type=RECORD_OVERDUE,
            data=build_record_overdue(r, escalated_to="practitioner"), dedupe_key=step,
        )
        return d.public_id


def test_rolled_back_transaction_sends_nothing(app, host, make_record, celery_worker):
    record = make_record()
    with pytest.raises(RuntimeError):
        with session_scope(app) as s:
            r = s.get(Record, record.id)
            enqueue_event(s, tenant=r.tenant, record=r, event_type=RECORD_OVERDUE,
                          data=build_record_overdue(r, escalated_to="practitioner"))
            raise RuntimeError("the caller's transaction fails")
    with session_scope(app) as s:
        assert s.scalars(select(Delivery)).all() == []
    # a committed one goes out; the host never saw anything of the rolled-back one
    wid = overdue(app, record)
    assert host.wait_for_records(1)
    assert list(host.records) == [wid] and len(host.requests) == 1


def test_same_event_twice_is_one_delivery(app, host, make_record, celery_worker):
    record = make_record()
    first = overdue(app, record, step="due")
    assert overdue(app, record, step="due") == first
    second = overdue(app, record, step="+1wd")
    assert second != first
    assert host.wait_for_records(2)
    wait_until(state_is(app, first, DELIVERED))
    wait_until(state_is(app, second, DELIVERED))
    assert sorted(host.records) == sorted([first, second])


def test_host_down_for_first_attempts_then_exactly_one_record(app, host, make_record,
                                                             celery_worker):
    record = make_record()
    host.fail(3, status=500)
    host.fail(1, status=503)
    wid = overdue(app, record)
    wait_until(state_is(app, wid, DELIVERED))
    d, attempts = load(app, wid)
    assert d.attempts == 5 and d.last_status == 200 and d.delivered_at is not None
    assert [(a.number, a.verdict, a.status_code) for a in attempts] == [
        (1, "retry", 500), (2, "retry", 500), (3, "retry", 500), (4, "retry", 503),
        (5, "success", 200)]
    assert all(a.duration_ms is not None and a.duration_ms >= 0 for a in attempts)
    assert [r.webhook_id for r in host.requests] == [wid] * 5
    assert all(r.verified for r in host.requests)
    assert list(host.records) == [wid]
    body = host.records[wid]
    assert body["type"] == "share.record_overdue"
    assert body["data"] == {"request_id": record.request_id, "record_id": record.public_id,
                            "due_at": body["data"]["due_at"], "escalated_to": "practitioner"}


def test_timeout_counts_as_retryable_and_the_host_dedupes(app, host, make_record,
                                                         celery_worker):
    record = make_record()
    host.stall(1, seconds=1.6)  # DELIVERY_TIMEOUT is 1 s in these tests
    wid = overdue(app, record)
    wait_until(state_is(app, wid, DELIVERED))
    _, attempts = load(app, wid)
    assert attempts[0].error == "timeout" and attempts[0].verdict == "retry"
    assert 900 <= attempts[0].duration_ms < 1600
    # the slow host also stored the first post when it finally answered: same webhook-id
    assert host.wait_for_requests(2)
    assert host.wait_for(lambda h: len(h.requests) == 2 and any(r.duplicate for r in h.requests))
    assert list(host.records) == [wid]


def test_400_is_a_final_failure_and_not_retried(app, host, make_record, celery_worker):
    record = make_record()
    host.always(400)
    wid = overdue(app, record)
    wait_until(state_is(app, wid, FAILED))
    d, attempts = load(app, wid)
    assert d.attempts == 1 and d.last_status == 400 and len(attempts) == 1
    assert sweep(app)["due"] == 0
    assert len(host.requests) == 1 and host.records == {}


def test_redirect_is_not_followed(app, host, make_record, celery_worker):
    from sharewise.plugin.outbox.hostsim import HostSimulator

    record = make_record()
    with HostSimulator("whsec_" + base64.b64encode(b"x" * 24).decode()) as elsewhere:
        host.redirect(elsewhere.url)
        wid = overdue(app, record)
        wait_until(state_is(app, wid, FAILED))
        d, _ = load(app, wid)
        assert d.last_status == 302 and d.last_error == "redirect_not_followed"
        assert elsewhere.requests == []


def test_retry_after_is_honoured(app, host, make_record, celery_worker):
    record = make_record()
    host.fail(1, status=429, retry_after="1")  # the schedule alone would retry after 50 ms
    wid = overdue(app, record)
    wait_until(state_is(app, wid, DELIVERED))
    first, second = host.requests
    assert second.at - first.at >= 0.95
    assert list(host.records) == [wid]


def test_410_disables_the_callback_until_an_operator_enables_it(app, host, make_record,
                                                               celery_worker):
    record = make_record()
    host.fail(1, status=410)
    gone = overdue(app, record, step="due")
    wait_until(state_is(app, gone, FAILED))
    with session_scope(app) as s:
        ts = s.get(TenantState, "northshire")
        assert ts.callback_disabled and gone in ts.disabled_reason
    # while disabled, a new delivery is kept (parked), not sent
    held = overdue(app, record, step="+1wd")
    wait_until(lambda: load(app, held)[0].next_attempt_at is None)
    d, _ = load(app, held)
    assert d.state == PENDING and d.attempts == 0
    assert sweep(app)["due"] == 0
    assert len(host.requests) == 1
    runner = CliRunner()
    with app.app_context():
        listing = runner.invoke(_cli(), ["deliveries", "list", "--tenant", "northshire"])
    assert "note: tenant northshire's callback is disabled" in listing.output
    assert [line for line in listing.output.splitlines() if line.startswith(held)][0].endswith(
        "held (callback disabled)")
    # the operator re-enables: the parked one goes out; the 410'd one can be re-sent by hand
    with app.app_context():
        out = runner.invoke(_cli(), ["deliveries", "enable-callback", "northshire"])
    assert out.exit_code == 0, out.output
    assert "1 held delivery(ies) queued" in out.output
    wait_until(state_is(app, held, DELIVERED))
    with app.app_context():
        out = runner.invoke(_cli(), ["deliveries", "retry", gone])
    assert out.exit_code == 0, out.output
    wait_until(state_is(app, gone, DELIVERED))
    assert sorted(host.records) == sorted([gone, held])
    assert [r.webhook_id for r in host.requests].count(gone) == 2


def _cli() -> Any:
    from sharewise.plugin.cli import main

    return main


def test_dead_letter_after_the_last_retry_then_operator_resend(app, host, make_record, smtp,
                                                              celery_worker, caplog):
    record = make_record()
    host.always(503)
    wid = overdue(app, record)
    with caplog.at_level("ERROR", logger="sharewise.plugin.outbox.sender"):
        wait_until(state_is(app, wid, DEAD))
        wait_until(lambda: load(app, wid)[0].operators_notified_at is not None)
    d, attempts = load(app, wid)
    assert d.attempts == 10 and len(attempts) == 10
    assert all(a.status_code == 503 for a in attempts)
    assert len(host.requests) == 10 and host.records == {}
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(wid in m and "dead" in m for m in errors)
    assert not any(record.request_id in m for m in errors)
    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ["ops@northshire.example"]
    assert record.public_id in mail.subject and "dead" in mail.subject
    text = mail.part("plain")
    assert wid in text and f"sharewise deliveries retry {wid}" in text
    for private in (record.request_id, "Zo\u00eb", "CASE-2026"):
        assert private not in mail.raw.decode("utf-8", "replace")
    # the operator fixes the host and re-sends: same webhook-id, stored once
    host.reset()
    runner = CliRunner()
    with app.app_context():
        listing = runner.invoke(_cli(), ["deliveries", "list", "--state", "dead"])
        assert wid in listing.output
        out = runner.invoke(_cli(), ["deliveries", "retry", "--all-dead"])
    assert out.exit_code == 0 and "1 delivery(ies) queued" in out.output
    wait_until(state_is(app, wid, DELIVERED))
    assert list(host.records) == [wid]
    with app.app_context():
        shown = runner.invoke(_cli(), ["deliveries", "show", wid])
        listing = runner.invoke(_cli(), ["deliveries", "list"])
    assert shown.exit_code == 0
    assert shown.output.count("503") >= 10 and "success" in shown.output
    assert "attempts:      11 (1 in this round)" in shown.output
    # the list counts every try, also the ten made before the operator's retry
    (row,) = [line for line in listing.output.splitlines() if line.startswith(wid)]
    assert row.split()[5] == "11", listing.output
    _, attempts = load(app, wid)
    assert [a.number for a in attempts] == list(range(1, 12))  # numbered across the re-send


def test_overdue_notice_for_a_record_that_became_final_is_skipped(app, host, make_record):
    """No worker: the row waits; the record is cancelled; the send then skips it."""
    from sharewise.plugin.outbox.sender import attempt_delivery

    record = make_record()
    wid = overdue(app, record)
    with session_scope(app) as s:
        s.get(Record, record.id).status = "cancelled"
    assert attempt_delivery(app, wid) == SKIPPED
    assert load(app, wid)[0].state == SKIPPED and host.requests == []


def test_record_completed_body_carries_the_pdf_and_every_field(app, host, make_record,
                                                              stored_pdf, celery_worker):
    from sharewise.forms.spec import load_spec

    record = make_record()
    key, sha, size = stored_pdf(record)
    values = {"decision": "share", "check_necessary": True, "review_on": "2026-11-20",
              "decision_reasons": "Proportionate and necessary.", "not_a_field": "dropped"}
    with session_scope(app) as s:
        r = s.get(Record, record.id)
        d = enqueue_record_completed(s, r, values=values, pdf_key=key, pdf_sha256=sha,
                                     pdf_size=size)
        wid = d.public_id
    assert host.wait_for_records(1)
    body = host.records[wid]
    assert body["type"] == RECORD_COMPLETED
    data = body["data"]
    assert data["schema"] == "sharewise.decision-record/2" and data["schema_version"] == 2
    assert data["record_id"] == record.public_id and data["request_id"] == record.request_id
    assert data["tenant"] == "northshire" and data["decision"] == "share"
    assert list(data["fields"]) == list(load_spec(2).names)
    assert data["fields"]["check_necessary"] is True
    assert data["fields"]["check_proportionate"] is False
    assert data["fields"]["review_on"] == "2026-11-20"
    assert "not_a_field" not in data["fields"]
    assert data["audit"] and {"at", "event", "actor"} == set(data["audit"][0])
    pdf = base64.b64decode(data["pdf"]["base64"])
    assert hashlib.sha256(pdf).hexdigest() == sha == data["pdf"]["sha256"]
    assert len(pdf) == size == data["pdf"]["size"]
    wait_until(state_is(app, wid, DELIVERED))
    d, _ = load(app, wid)
    assert "base64" not in d.payload["data"]["pdf"]  # the row stays small


def test_a_changed_pdf_is_never_sent(app, host, make_record, stored_pdf, celery_worker):
    from sharewise.plugin.storage import storage

    record = make_record()
    key, sha, size = stored_pdf(record)
    storage(app).put(key, b"%PDF-1.7 something else")
    with session_scope(app) as s:
        r = s.get(Record, record.id)
        wid = enqueue_record_completed(s, r, values={}, pdf_key=key, pdf_sha256=sha,
                                       pdf_size=size).public_id
    wait_until(state_is(app, wid, FAILED))
    assert load(app, wid)[0].last_error == "pdf_mismatch" and host.requests == []
