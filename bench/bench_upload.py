"""Upload benchmark: read-back plus validation through the service's upload path.

Run: ``.venv/bin/python -m bench.bench_upload`` (``--records N --rounds N`` to change the
sample size). Takes about half a minute.

Set-up: a Sharewise app on SQLite and a local file store in a temporary directory; ``--records``
records made through the real intake (a signed ``share.requested`` posted to the webhook), each
record's prefilled PDF completed through PDFium's form-fill API (``tests/forms/viewers.py``, as
Chrome saves it), once completely and once partially. Each round times, per record and
interleaved so machine load hits all alike:

* baseline: F2's in-process read, ``read_upload(..., isolate=False)`` plus ``validate``;
* Sharewise: ``plugin.uploads.services.inspect_upload``, the read-back plus validation step of
  ``handle_upload`` (sandboxed reader worker, pipe round trip, problems merged): the figure
  with the 10 ms target;
* for context, a whole ``handle_upload`` of a partial form (bytes written to the store, read,
  validated, version and audit rows written, committed), and the same through HTTP
  (``POST upload_url`` with the Flask test client, ``Accept: application/json``).

Finally the peak resident size of the reader worker after a 12 MB upload (the form plus an
incompressible stream, just under ``MAX_BODY_BYTES``) goes through ``handle_upload``, with the
target of 300 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ms)})"


def make_app(root: Path) -> Any:
    from plugin.app import create_app
    from plugin.signing import generate_secret

    tenants = root / "tenants.toml"
    tenants.write_text(
        "[tenants.northshire]\n"
        'name = "Northshire County Council"\n'
        f'webhook_secret = "{generate_secret()}"\n'
        'callback_url = "http://127.0.0.1:9/callback"\n'
        f'callback_secret = "{generate_secret()}"\n'
    )
    data = root / "data"
    return create_app({
        "DATA_DIR": str(data),
        "TENANTS": str(tenants),
        "DATABASE_URL": f"sqlite:///{data / 'sharewise.db'}",
        "BROKER_URL": f"filesystem://{data / 'broker'}",
        "STORAGE_URL": str(data / "files"),
        "BASE_URL": "http://sharewise.bench",
        "SECRET_KEYS": "bench-key",
        "LOG_LEVEL": "WARNING",
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from forms import sandbox
    from forms.reader import read_upload
    from forms.validate import validate
    from plugin.db import session_scope
    from plugin.demo import sample_event, signed_request
    from plugin.records.services import get_by_public_id
    from plugin.storage import storage
    from plugin.tenants import get_tenant
    from plugin.uploads.services import handle_upload, inspect_upload
    from tests.forms.badpdfs import with_big_stream
    from tests.forms.viewers import fill_with_pdfium
    from tests.plugin.uploads.journey import as_typed, complete_answers, partial_answers

    with tempfile.TemporaryDirectory(prefix="sharewise-bench-") as tmp:
        app = make_app(Path(tmp))
        client = app.test_client()
        secret = get_tenant("northshire", app).webhook_secrets[0]
        # No app context around the loop: a test-client request inside one would share it,
        # and the request's database session would outlive the request.
        items = []
        for _ in range(args.records):
            body, headers = signed_request(secret, sample_event())
            made = client.post("/webhooks/northshire", data=body, headers=headers).get_json()
            with session_scope(app) as session:
                record = get_by_public_id(session, made["record_id"])
            prefilled = storage(app).get(record.prefill_pdf_key)
            full = fill_with_pdfium(prefilled, as_typed(complete_answers()))
            partial = fill_with_pdfium(prefilled, as_typed(partial_answers()))
            upload_path = made["upload_url"].removeprefix(app.config["BASE_URL"])
            items.append((record, full, partial, upload_path))

        sandbox.warm()
        inspect_upload(items[0][0], items[0][1], app)  # the worker has seen one upload

        def baseline(item: tuple) -> None:
            record, full = item[0], item[1]
            read = read_upload(full, record_id=record.public_id, expected=record.prefill,
                               isolate=False)
            assert not validate({**record.prefill, **read.values})

        def sharewise(item: tuple) -> None:
            found = inspect_upload(item[0], item[1], app)
            assert found.code is None and not found.problems, found

        def whole(item: tuple) -> None:
            with session_scope(app) as session:
                result = handle_upload(session, item[0], item[2], source="api",
                                       actor="bench", app=app)
            assert result.outcome == "incomplete"

        def http(item: tuple) -> None:
            resp = client.post(item[3], data=item[2], headers={
                "Content-Type": "application/pdf", "Accept": "application/json"})
            assert resp.status_code == 200, resp.get_data(as_text=True)

        runs = {"baseline": baseline, "sharewise": sharewise, "whole": whole, "http": http}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _round in range(args.rounds):
            for item in items:
                for name, run in runs.items():
                    started = time.perf_counter()
                    run(item)
                    times[name].append(time.perf_counter() - started)

        size = statistics.median(len(i[1]) for i in items) / 1024
        print(f"{len(items)} records through real intake, completed through PDFium "
              f"(median {size:.0f} KB); {args.rounds} rounds")
        print(f"baseline: in-process read_upload + validate    {summary(times['baseline'])}")
        print(f"Sharewise: inspect_upload (sandboxed) read+validate "
              f"{summary(times['sharewise'])}")
        print("target: read-back plus validation at most 10 ms median")
        print(f"context: handle_upload (store, read, validate, version, commit) "
              f"{summary(times['whole'])}")
        print(f"context: POST upload_url (test client, JSON)   {summary(times['http'])}")

        # The 12 MB upload: a fresh single-worker pool so its peak is the one we read.
        sandbox.shutdown()
        os.environ["SHAREWISE_READER_WORKERS"] = "1"
        record, _full, partial, _path = items[0]
        limit = int(app.config["MAX_BODY_BYTES"])
        big = with_big_stream(partial, limit - 8192)
        assert len(big) <= limit
        started = time.perf_counter()
        with session_scope(app) as session:
            result = handle_upload(session, record, big, source="api", actor="bench",
                                       app=app)
        elapsed = time.perf_counter() - started
        peak = sandbox.get_pool().peak_rss() / 1e6
        print(f"12 MB upload ({len(big) / 1e6:.1f} MB) through handle_upload: "
              f"{result.outcome}{' ' + result.rejection_code if result.rejection_code else ''}"
              f" in {elapsed * 1000:.0f} ms; reader worker peak RSS {peak:.0f} MB "
              f"(target < 300 MB)")
        sandbox.shutdown()


if __name__ == "__main__":
    main()
