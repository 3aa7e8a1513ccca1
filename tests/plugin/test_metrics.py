"""``/metrics``: the counters move with what happens, and the database figures are true.

This is one process (the test app); the multiprocess mode (gunicorn's workers and the Celery
worker adding up into one ``/metrics``) is exercised through a real ``sharewise serve`` in
``tests/test_no_personal_data_leaks.py``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.plugin.uploads.journey import create_record, path_of


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by name and labels."""
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.get_data(as_text=True))
            for s in family.samples}


def test_metrics_count_events_refusals_uploads_and_read_the_database(
        client: Any, signed_post: Any, sample_event: Any) -> None:
    before = scrape(client)
    made = create_record(signed_post, sample_event)
    assert client.post("/webhooks/northshire", data=b"{}").status_code == 401
    upload = client.post(path_of(made["upload_url"]), data=b"not a pdf",
                         headers={"Content-Type": "application/pdf",
                                  "Accept": "application/json"})
    assert upload.status_code == 400
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("sharewise_events_total", type="share.requested", status="201") == 1
    assert moved("sharewise_signature_failures_total", tenant="northshire") == 1
    assert moved("sharewise_uploads_total", source="api", outcome="rejected") == 1
    assert moved("sharewise_http_request_duration_seconds_count", endpoint="webhooks.receive",
                 method="POST", status="201") == 1
    # from the database: exactly this test's record (each test has its own database)
    assert after[("sharewise_records", (("status", "awaiting_completion"),
                                        ("tenant", "northshire")))] == 1
    assert after[("sharewise_oldest_due_seconds", (("queue", "deliveries"),))] == 0
    # labels are kinds and endpoints: no record id, no link token
    text = client.get("/metrics").get_data(as_text=True)
    assert made["record_id"] not in text and "/upload/" not in text


def test_queue_lag_is_the_age_of_the_oldest_due_reminder(
        app: Any, client: Any, signed_post: Any, sample_event: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from sharewise.plugin.db import session_scope, utcnow
    from sharewise.plugin.reminders.models import Reminder

    create_record(signed_post, sample_event)
    with session_scope(app) as session:
        session.execute(update(Reminder).values(due_at=utcnow() - timedelta(minutes=10)))
    lag = scrape(client)[("sharewise_oldest_due_seconds", (("queue", "reminders"),))]
    assert 600 <= lag < 700
