"""Prometheus metrics counted by the service (prometheus-client), shown at ``GET /metrics``.

Counted where they happen, in every process (web and Celery worker):

- ``sharewise_events_total{type, status}``: host events by type and the HTTP status answered;
- ``sharewise_signature_failures_total{tenant}``: events refused for their signature;
- ``sharewise_uploads_total{source, outcome}``: uploads by where from and what became of them;
- ``sharewise_reminders_sent_total{kind, step}``: reminder and digest emails sent (the
  request email that tells a practitioner of a new record counts as kind ``request``);
- ``sharewise_delivery_attempts_total{verdict}`` and ``sharewise_deliveries_total{state}``:
  post-back attempts by verdict and deliveries by the state an attempt left them in;
- ``sharewise_http_request_duration_seconds{endpoint, method, status}`` and
  ``sharewise_task_duration_seconds{task, state}``: latency histograms (the task one from
  Celery's ``task_prerun`` / ``task_postrun`` signals, connected in ``tasks/worker.py``).

The figures read from the database when scraped (records by state, queue lag) and the
``/metrics`` view are in :mod:`sharewise.plugin.exporter`, above the concerns whose tables it
reads; this module sits below every concern, which counts here.

**Several processes.** gunicorn's workers and Celery's pool are separate processes, each with
its own counters. With ``PROMETHEUS_MULTIPROC_DIR`` set (``sharewise serve``, ``web`` and
``worker`` set it to ``METRICS_DIR``), every process writes its samples there and ``/metrics``
adds them up (prometheus-client's multiprocess mode), so the web's ``/metrics`` also shows the
worker's counts when they share the directory (one machine). ``serve`` empties the directory
when it starts. Labels hold ids of kinds, never record ids or anything personal.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram, multiprocess

EVENTS = Counter("sharewise_events", "Host events received, by type and the status answered.",
                 ["type", "status"])
SIGNATURE_FAILURES = Counter("sharewise_signature_failures",
                             "Events refused because their signature did not verify.",
                             ["tenant"])
UPLOADS = Counter("sharewise_uploads", "Uploads by source and outcome.", ["source", "outcome"])
REMINDERS_SENT = Counter("sharewise_reminders_sent", "Reminder and digest emails sent.",
                         ["kind", "step"])
DELIVERY_ATTEMPTS = Counter("sharewise_delivery_attempts", "Post-back attempts by verdict.",
                            ["verdict"])
DELIVERIES = Counter("sharewise_deliveries",
                     "Post-back attempts by the state they left the delivery in.", ["state"])
REQUEST_SECONDS = Histogram("sharewise_http_request_duration_seconds",
                            "Time to answer an HTTP request.", ["endpoint", "method", "status"])
TASK_SECONDS = Histogram("sharewise_task_duration_seconds", "Time a Celery task ran.",
                         ["task", "state"],
                         buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))


def mark_process_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: drop a dead worker's live-only samples (multiprocess)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


def init_app(app: Flask) -> None:
    """Time every request (by endpoint, never by path: paths hold link tokens)."""

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(resp: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            REQUEST_SECONDS.labels(request.endpoint or "unknown", request.method,
                                   str(resp.status_code)).observe(time.perf_counter() - started)
        return resp
