"""Upload benchmark: read-back plus validation through the service's upload path.

Run: ``.venv/bin/python -m bench.bench_upload`` (``--records N --rounds N`` to change the
sample size). Takes about half a minute.

Set-up: a Sharewise app on SQLite and a local file store in a temporary directory; ``--records``
records made through the real intake (a signed ``share.requested`` posted to the webhook), every
host text value different between records (names, emails, references, purpose), each record's
prefilled PDF completed through PDFium's form-fill API (``tests/forms/viewers.py``, as Chrome
saves it) with typed text that differs between records too: once completely, twice partially.
Each file's first read is reported next to all rounds. Each round times, per record and
interleaved so machine load hits all alike:

* baseline: F2's in-process read, ``read_upload(..., isolate=False)`` plus ``validate``;
* Sharewise: ``plugin.uploads.services.inspect_upload``, the read-back plus validation step of
  ``handle_upload`` (sandboxed reader worker, pipe round trip, problems merged): the figure
  with the 15 ms target;
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
    from sharewise.plugin.app import create_app
    from sharewise.plugin.signing import generate_secret

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


def host_data(i: int) -> dict[str, Any]:
    """``share.requested`` data for record ``i``: every host text value differs between
    records (as names, emails, teams and references do between real ones), so no prefilled
    field is byte-identical between two records' uploads."""
    return {
        "case": {"reference": f"CASE-2026-{i:05d}"},
        "subject": {"name": f"Zoë Ångström-Nørgaard {i}", "date_of_birth": "2014-03-09",
                    "type": "child"},
        "requester": {"organisation": f"Northshire Police {i}"},
        "practitioner": {"id": f"P-{i}", "name": f"Siân O'Connor {i}",
                         "email": f"sian.{i}@example.org", "team": f"Children's Services {i}",
                         "manager": {"name": f"Dafydd Llŷr {i}",
                                     "email": f"dafydd.{i}@example.org"}},
        "recipient": {"organisation": f"Northshire Police {i}", "name": f"DC Renée Faÿ {i}",
                      "role": f"Investigating officer {i}"},
        "purpose": f"To support a joint safeguarding assessment, request {i}.",
        "information_requested": f"School attendance and recent contact notes, request {i}.",
    }


def typed(answers: dict[str, Any], tag: str) -> dict[str, Any]:
    """What a practitioner types, with every text answer made unique by ``tag``."""
    from sharewise.forms.spec import load_spec
    from tests.plugin.uploads.journey import as_typed

    spec = load_spec(2)  # the records intake makes
    return as_typed({
        name: f"{value} ({tag})" if spec[name].type in ("text", "multiline") else value
        for name, value in answers.items()
    }, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from sharewise.forms import sandbox
    from sharewise.forms.sandbox import read_upload
    from sharewise.forms.validate import validate
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.demo import sample_event, signed_request
    from sharewise.plugin.records.services import get_by_public_id
    from sharewise.plugin.tenants import get_tenant
    from sharewise.plugin.uploads.services import handle_upload, inspect_upload
    from tests.forms.badpdfs import with_big_stream
    from tests.forms.viewers import fill_with_pdfium
    from tests.plugin.uploads.journey import complete_answers, partial_answers

    with tempfile.TemporaryDirectory(prefix="sharewise-bench-") as tmp:
        app = make_app(Path(tmp))
        client = app.test_client()
        secret = get_tenant("northshire", app).webhook_secrets[0]
        # No app context around the loop: a test-client request inside one would share it,
        # and the request's database session would outlive the request.
        items = []
        for i in range(args.records):
            body, headers = signed_request(secret, sample_event(**host_data(i)))
            made = client.post("/webhooks/northshire", data=body, headers=headers).get_json()
            with session_scope(app) as session:
                record = get_by_public_id(session, made["record_id"])
            pdf_path = made["form_pdf_url"].removeprefix(app.config["BASE_URL"])
            prefilled = client.get(pdf_path).data  # the download (made on first use)
            full = fill_with_pdfium(prefilled, typed(complete_answers(), f"{i}"))
            partial = fill_with_pdfium(prefilled, typed(partial_answers(), f"{i}a"))
            partial_http = fill_with_pdfium(prefilled, typed(partial_answers(), f"{i}b"))
            upload_path = made["upload_url"].removeprefix(app.config["BASE_URL"])
            items.append((record, full, partial, upload_path, partial_http))

        # Warm up on one more record of its own (the worker and this process have then
        # parsed the template and one upload, as a running service has).
        body, headers = signed_request(secret, sample_event(**host_data(args.records)))
        made = client.post("/webhooks/northshire", data=body, headers=headers).get_json()
        with session_scope(app) as session:
            spare = get_by_public_id(session, made["record_id"])
        spare_pdf = fill_with_pdfium(
            client.get(made["form_pdf_url"].removeprefix(app.config["BASE_URL"])).data,
            typed(complete_answers(), "warm"))
        sandbox.warm()
        inspect_upload(spare, spare_pdf, app)
        read_upload(spare_pdf, record_id=spare.public_id, expected=spare.prefill, isolate=False,
                    version=spare.schema_version)

        def baseline(item: tuple) -> None:
            record, full = item[0], item[1]
            read = read_upload(full, record_id=record.public_id, expected=record.prefill,
                               isolate=False, version=record.schema_version)
            assert not validate({**record.prefill, **read.values},
                                version=record.schema_version)

        def sharewise(item: tuple) -> None:
            found = inspect_upload(item[0], item[1], app)
            assert found.code is None and not found.problems, found

        def whole(item: tuple) -> None:
            with session_scope(app) as session:
                result = handle_upload(session, item[0], item[2], source="api",
                                       actor="bench", app=app)
            assert result.outcome == "incomplete"

        def http(item: tuple) -> None:
            resp = client.post(item[3], data=item[4], headers={
                "Content-Type": "application/pdf", "Accept": "application/json"})
            assert resp.status_code == 200, resp.get_data(as_text=True)

        runs = {"baseline": baseline, "sharewise": sharewise, "whole": whole, "http": http}
        times: dict[str, list[float]] = {name: [] for name in runs}
        first: dict[str, list[float]] = {name: [] for name in runs}
        for round_no in range(args.rounds):
            for item in items:
                for name, run in runs.items():
                    started = time.perf_counter()
                    run(item)
                    elapsed = time.perf_counter() - started
                    times[name].append(elapsed)
                    if round_no == 0:
                        first[name].append(elapsed)

        size = statistics.median(len(i[1]) for i in items) / 1024
        print(f"{len(items)} records through real intake (every host and typed text value "
              f"differs), completed through PDFium (median {size:.0f} KB); {args.rounds} rounds;"
              f" 'first' is each file's first read (what a real upload gets)")
        lines = [
            ("baseline", "baseline: in-process read_upload + validate"),
            ("sharewise", "Sharewise: inspect_upload (sandboxed read + validate)"),
            ("whole", "context: whole handle_upload (store, read, version, commit)"),
            ("http", "context: POST upload_url (Flask test client, JSON)"),
        ]
        for name, label in lines:
            print(f"{label:<62} first: {summary(first[name])}")
            print(f"{'':<62}   all: {summary(times[name])}")
        print("target: read-back plus validation under 15 ms median")

        # The 12 MB upload: a fresh single-worker pool so its peak is the one we read.
        sandbox.shutdown()
        os.environ["SHAREWISE_READER_WORKERS"] = "1"
        record, partial = items[0][0], items[0][2]
        limit = app.config["MAX_BODY_BYTES"]
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
