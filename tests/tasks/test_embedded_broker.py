"""The embedded broker under ordinary load, through a real ``sharewise serve``.

With kombu's filesystem transport, four practitioners completing forms at once crashed the
Celery worker within half a minute (a consumer read a message file its producer had created but
not yet written: ``Unrecoverable error: JSONDecodeError``, kombu issue 1551), and ``serve``
stopped. The embedded broker is now kombu's SQLAlchemy transport on its own SQLite file: each
message is one row written in one transaction. Here concurrent journeys (intake, a complete
upload, the post-back to a host) must all arrive with the worker never restarted; then a
damaged message put on the queue from outside (not JSON, or JSON that is not a message) is
logged and skipped: the worker carries on and later work arrives.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sharewise.forms.prefill import fill
from sharewise.plugin.demo import sample_event, signed_request
from sharewise.plugin.outbox.hostsim import HostSimulator
from sharewise.plugin.signing import generate_secret
from tests.plugin.uploads.journey import complete_answers
from tests.serving import Served

WEBHOOK_SECRET, CALLBACK_SECRET = generate_secret(), generate_secret()
CLIENTS, JOURNEYS = 4, 6  # each client: JOURNEYS records from request to post-back


class Serve(Served):
    """``sharewise serve`` with one tenant posting back to ``host``."""

    def __init__(self, root: Path, host: HostSimulator) -> None:
        super().__init__(root, tenants=(
            "[tenants.northshire]\nname = \"Northshire County Council\"\n"
            f"webhook_secret = \"{WEBHOOK_SECRET}\"\ncallback_url = \"{host.url}\"\n"
            f"callback_secret = \"{CALLBACK_SECRET}\"\n"))
        self.broker = self.data / "broker.db"

    def worker_pid(self) -> int:
        pids = re.findall(r"worker pid (\d+)|worker started again \(pid (\d+)\)", self.output())
        return int([p for pair in pids for p in pair if p][-1])

    def journey(self, request_id: str) -> str:
        """A record from request to an uploaded complete form; its record id."""
        body, headers = signed_request(WEBHOOK_SECRET, sample_event(request_id=request_id))
        made = httpx.post(f"{self.base}/webhooks/northshire", content=body, headers=headers,
                          timeout=60)
        assert made.status_code == 201, made.text
        record_id = made.json()["record_id"]
        values, prefill_hash, version = self.prefill(record_id)  # sealed at rest
        pdf = fill({**values, **complete_answers(version)}, record_id=record_id,
                   prefill_hash=prefill_hash, version=version).pdf
        done = httpx.post(made.json()["upload_url"], content=pdf, timeout=60,
                          headers={"Content-Type": "application/pdf",
                                   "Accept": "application/json"})
        assert done.status_code == 200 and done.json()["status"] == "complete", done.text
        return record_id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with HostSimulator(CALLBACK_SECRET) as host:
        serve = Serve(tmp_path_factory.mktemp("embedded"), host)
        try:
            serve.wait_ready()
            yield serve, host
        finally:
            serve.stop()


def test_concurrent_journeys_all_arrive_and_the_worker_stays_up(served):
    serve, host = served
    worker = serve.worker_pid()
    records: list[str] = []
    errors: list[BaseException] = []

    def practitioner(n: int) -> None:
        try:
            for i in range(JOURNEYS):
                records.append(serve.journey(f"REQ-{n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=practitioner, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(records) == CLIENTS * JOURNEYS
    assert host.wait_for_records(len(records), timeout=120), serve.output()[-3000:]
    completed = {b["data"]["record_id"] for b in host.records.values()
                 if b["type"] == "share.record_completed"}
    assert completed == set(records)
    log = serve.output()
    assert "Unrecoverable error" not in log and "exited with code" not in log, log[-3000:]
    assert serve.worker_pid() == worker and serve.proc.poll() is None


@pytest.mark.parametrize("payload", ["", "{not json", '{"json": "but not a message"}'])
def test_a_damaged_message_is_logged_and_skipped_and_the_worker_carries_on(served, payload):
    serve, host = served
    worker = serve.worker_pid()
    with sqlite3.connect(serve.broker, timeout=30) as broker:
        queue_id = broker.execute("SELECT id FROM kombu_queue WHERE name = 'celery'").fetchone()[0]
        broker.execute("INSERT INTO kombu_message (visible, timestamp, payload, version, "
                       "queue_id) VALUES (1, datetime('now'), ?, 1, ?)", (payload, queue_id))
    skipped = "could not be read and was skipped"
    deadline = time.monotonic() + 30
    while serve.output().count(skipped) < 1 + SKIPS.index(payload):
        assert time.monotonic() < deadline, serve.output()[-3000:]
        time.sleep(0.2)
    count = len(host.records)
    record_id = serve.journey(f"REQ-AFTER-{SKIPS.index(payload)}")
    assert host.wait_for_records(count + 1, timeout=120), serve.output()[-3000:]
    assert record_id in {b["data"]["record_id"] for b in host.records.values()}
    assert serve.worker_pid() == worker and serve.proc.poll() is None  # never restarted
    log = serve.output()
    assert "Unrecoverable error" not in log and "exited with code" not in log, log[-3000:]


SKIPS = ["", "{not json", '{"json": "but not a message"}']
