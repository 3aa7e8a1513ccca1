"""No personal data in any log line, error response or email, over the whole journey.

A real ``sharewise serve`` (gunicorn, the Celery worker with beat, the PDF reader sandbox) at
log level DEBUG, with JSON logs, real SMTP (aiosmtpd) and a local host for the post-backs. The
events carry distinctive names, a date of birth and free text ("canaries"); the practitioner's
uploads carry distinctive answers. The journey: a record created, its reminder to the
practitioner and the overdue one to the manager emailed, an incomplete upload, a complete one,
the post-back delivered; and around it hostile and faulty requests that carry canaries too
(a bad signature, an invalid value, an oversized value, a replay, a garbage upload, an upload
to a finished record, a post-back the host refuses, so the tenant's admin is emailed). Then
no canary may appear in: the output of every process (every line of which must be a JSON
object), the body of any 4xx/5xx answer, any email (headers and body), or ``/metrics``
(which, read here, also shows that the samples of every process are added up).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sharewise.forms.prefill import fill
from sharewise.plugin.demo import sample_event, signed_request
from sharewise.plugin.outbox.hostsim import HostSimulator
from sharewise.plugin.signing import generate_secret
from tests.plugin.uploads.journey import complete_answers, partial_answers
from tests.serving import Served
from tests.smtp import SmtpSink

SECRET, CALLBACK_SECRET, REFUSED_SECRET = generate_secret(), generate_secret(), generate_secret()

#: What must never leave the service except to the host and the practitioner's own page.
CANARIES = {
    "subject_name": "Ottoline Quaverwick-Zephyrine",
    "date_of_birth": "2013-07-21",
    "recipient_name": "Thaddeus Mirrowlake",
    "purpose": "CANARY-PURPOSE kestrelmoon safeguarding narrative",
    "information_requested": "CANARY-REQUESTED nightjarfield attendance notes",
    "invalid_value": "CANARY-INVALID-gloamwhistle",
    "bad_signature": "CANARY-UNSIGNED-Pemberquist",
    "upload_garbage": "CANARY-GARBAGE-Vellacombe",
    "views_expressed": "CANARY-VIEWS the mother Marguerite Thistlewood agreed",
    "child_views": "CANARY-CHILD wants Uncle Barnaby Crowhurst told",
    "risk_if_shared": "CANARY-RISK-SHARED Crowhurst might move house",
    "risk_if_not_shared": "CANARY-RISK-NOT-SHARED harm at 14 Larkspur Row",
    "decision_reasons": "CANARY-REASONS police strategy discussion about Ottoline",
    "information_shared": "CANARY-SHARED attendance of Ottoline Quaverwick",
}


def _variants(text: str) -> set[str]:
    """A canary as it could appear: as is, JSON-escaped, lower-case."""
    return {text, json.dumps(text)[1:-1], text.lower()}


def _leaks(text: str) -> list[str]:
    low = text.lower()
    return [name for name, canary in CANARIES.items()
            if any(v.lower() in low for v in _variants(canary))]


def _serve(root: Path, host: HostSimulator, refusing: HostSimulator,
           smtp: SmtpSink) -> Served:
    """``sharewise serve`` with JSON logs at DEBUG, SMTP and two tenants."""
    policy = ('[tenants.{slug}.policy]\nsend_hours = ""\ndigest_time = ""\n'
              'reminder_steps = [{{ offset = "0", to = "practitioner" }}, '
              '{{ offset = "+1 minute", to = "manager" }}]\n')
    tenants = (
        f'[tenants.northshire]\nname = "Northshire"\nwebhook_secret = "{SECRET}"\n'
        f'callback_url = "{host.url}"\ncallback_secret = "{CALLBACK_SECRET}"\n'
        'admin_email = "admin@northshire.example"\n' + policy.format(slug="northshire")
        + f'[tenants.refused]\nname = "Refused"\nwebhook_secret = "{SECRET}"\n'
        f'callback_url = "{refusing.url}"\ncallback_secret = "{REFUSED_SECRET}"\n'
        'admin_email = "admin@refused.example"\n' + policy.format(slug="refused"))
    return Served(root, tenants=tenants, env={
        "SHAREWISE_LOG_LEVEL": "DEBUG", "SHAREWISE_LOG_FORMAT": "json",
        "SHAREWISE_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "SHAREWISE_REMINDER_SCAN_INTERVAL": "1", "SHAREWISE_SWEEP_INTERVAL": "1",
        "SHAREWISE_DELIVERY_SWEEP_INTERVAL": "1"})


def _event(**overrides: Any) -> dict[str, Any]:
    event = sample_event(
        purpose=CANARIES["purpose"], information_requested=CANARIES["information_requested"],
        due_at=(datetime.now(UTC) - timedelta(minutes=5)).isoformat(), **overrides)
    event["data"]["subject"].update(name=CANARIES["subject_name"],
                                    date_of_birth=CANARIES["date_of_birth"])
    event["data"]["recipient"]["name"] = CANARIES["recipient_name"]
    return event


def _answers(version: int, partial: bool = False) -> dict[str, Any]:
    answers = partial_answers(version) if partial else complete_answers(version)
    return {**answers, **{k: v for k, v in CANARIES.items() if k in answers}}


def _wait(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.timeout(300)
def test_no_canary_in_logs_error_answers_or_emails(tmp_path):
    errors: list[httpx.Response] = []

    def send(method: str, url: str, **kwargs: Any) -> httpx.Response:
        resp = httpx.request(method, url, timeout=60, **kwargs)
        if resp.status_code >= 400:
            errors.append(resp)
        return resp

    smtp = SmtpSink()
    smtp.start()
    with HostSimulator(CALLBACK_SECRET) as host, HostSimulator(REFUSED_SECRET) as refusing:
        refusing.always(422)
        served = _serve(tmp_path, host, refusing, smtp)
        try:
            served.wait_ready()
            hook = f"{served.base}/webhooks/northshire"

            # the record, and a repeat of the same delivery (answered again, 200)
            body, headers = signed_request(SECRET, _event(request_id="REQ-LEAK-1"))
            made = send("POST", hook, content=body, headers=headers)
            assert made.status_code == 201, made.text
            assert send("POST", hook, content=body, headers=headers).status_code == 200
            record_id = made.json()["record_id"]

            # hostile and faulty events, each carrying a canary
            bad = _event(request_id="REQ-LEAK-BAD")
            bad["data"]["subject"]["date_of_birth"] = CANARIES["invalid_value"]
            body_b, headers_b = signed_request(SECRET, bad)
            assert send("POST", hook, content=body_b, headers=headers_b).status_code == 422
            huge = _event(request_id="REQ-LEAK-HUGE")
            huge["data"]["subject"]["name"] = CANARIES["subject_name"] * 400
            body_h, headers_h = signed_request(SECRET, huge)
            assert send("POST", hook, content=body_h, headers=headers_h).status_code == 422
            unsigned = _event(request_id=CANARIES["bad_signature"])
            body_u, headers_u = signed_request(generate_secret(), unsigned)
            assert send("POST", hook, content=body_u, headers=headers_u).status_code == 401
            same_id = _event(request_id="REQ-LEAK-1")  # same request, another delivery
            body_s, headers_s = signed_request(SECRET, same_id)
            assert send("POST", hook, content=body_s, headers=headers_s).status_code < 500

            assert send("GET", f"{served.base}/form/{CANARIES['bad_signature']}"
                        ).status_code == 403
            cancel = {"type": "share.cancelled", "timestamp": datetime.now(UTC).isoformat(),
                      "data": {"request_id": CANARIES["invalid_value"],
                               "reason": CANARIES["decision_reasons"]}}
            body_c, headers_c = signed_request(SECRET, cancel)
            assert send("POST", hook, content=body_c, headers=headers_c).status_code == 404

            # reminders: the record was due five minutes ago
            _wait("the practitioner's and the manager's reminders",
                  lambda: len(smtp.received) >= 2, timeout=120)

            # a garbage upload, an incomplete one, a complete one
            upload = made.json()["upload_url"]
            assert send("POST", upload, content=b"%PDF-1.7\n" + CANARIES["upload_garbage"]
                        .encode() * 50, headers={"Content-Type": "application/pdf",
                                                 "Accept": "application/json"}
                        ).status_code == 400
            values, prefill_hash, version = served.prefill(record_id)
            for partial in (True, False):
                pdf = fill({**values, **_answers(version, partial)}, record_id=record_id,
                           prefill_hash=prefill_hash, version=version).pdf
                resp = send("POST", upload, content=pdf, headers={
                    "Content-Type": "application/pdf", "Accept": "application/json"})
                assert resp.status_code == 200, resp.text
                assert resp.json()["status"] == ("incomplete" if partial else "complete")
            assert host.wait_for(lambda h: any(
                b["type"] == "share.record_completed" for b in list(h.records.values())),
                timeout=60), served.output()[-3000:]
            # the control: the canaries went all the way to the host (where they belong), and
            # the detector finds them there
            posted = json.dumps(list(host.records.values()), ensure_ascii=False)
            assert {"subject_name", "date_of_birth", "views_expressed", "risk_if_shared",
                    "decision_reasons"} <= set(_leaks(posted))
            # the finished record refuses another upload (and says nothing of its content)
            again = send("POST", upload, content=pdf, headers={
                "Content-Type": "application/pdf", "Accept": "application/json"})
            assert 400 <= again.status_code < 500

            # a tenant whose host refuses the post-back: its admin is emailed
            refused = _event(request_id="REQ-LEAK-REFUSED")
            body_r, headers_r = signed_request(SECRET, refused)
            made_r = send("POST", f"{served.base}/webhooks/refused", content=body_r,
                          headers=headers_r)
            assert made_r.status_code == 201, made_r.text
            rid = made_r.json()["record_id"]
            values, prefill_hash, version = served.prefill(rid)
            pdf = fill({**values, **_answers(version)}, record_id=rid,
                       prefill_hash=prefill_hash, version=version).pdf
            assert send("POST", made_r.json()["upload_url"], content=pdf, headers={
                "Content-Type": "application/pdf", "Accept": "application/json"}
            ).json()["status"] == "complete"
            _wait("the admin's notice", lambda: any(
                "admin@refused.example" in m.rcpt_tos for m in smtp.received), timeout=60)
            metrics = httpx.get(f"{served.base}/metrics", timeout=30).text
        finally:
            served.stop()
            smtp.stop()
        emails = list(smtp.received)

    log = served.output()
    # all of it was exercised: reminders to both, the admin notice, the post-back
    assert {"sian.oconnor@example.org", "dafydd.llyr@example.org",
            "admin@refused.example"} <= {r for m in emails for r in m.rcpt_tos}
    assert {"incomplete", "complete"} <= {e.get("status") for e in _entries(log)}
    assert len(errors) >= 7
    # the proof: no canary anywhere
    for resp in errors:
        assert not _leaks(resp.text), (resp.status_code, resp.text)
    for mail in emails:
        assert not _leaks(mail.raw.decode("utf-8", "replace")), mail.raw
        assert not _leaks(str(mail.message.get_body(("plain",)).get_content())), mail.raw
    assert not _leaks(log), [line for line in log.splitlines() if _leaks(line)][:5]
    assert not _leaks(metrics)
    # /metrics adds up every process's samples (prometheus-client's multiprocess mode): the web
    # workers' events and uploads, and the Celery worker's emails, deliveries and task times
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert samples[("sharewise_events_total", (("status", "201"),
                                               ("type", "share.requested")))] == 2
    assert samples[("sharewise_uploads_total", (("outcome", "accepted"),
                                                ("source", "api")))] == 2
    assert sum(v for (n, _), v in samples.items() if n == "sharewise_reminders_sent_total") >= 2
    assert samples[("sharewise_deliveries_total", (("state", "delivered"),))] >= 2
    assert sum(v for (n, labels), v in samples.items()
               if n == "sharewise_task_duration_seconds_count") >= 4
    assert samples[("sharewise_records", (("status", "complete"), ("tenant", "northshire")))] == 1
    assert "Traceback" not in log


def _entries(log: str) -> list[dict[str, Any]]:
    """Every log line of the service's processes as JSON (the supervisor's own console lines
    and Celery's printed shutdown notice aside): a line that is not JSON fails here."""
    lines = [line for line in log.splitlines()
             if line and not line.startswith(("sharewise: ", "worker: Warm shutdown"))]
    return [json.loads(line) for line in lines]

