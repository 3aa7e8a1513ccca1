"""Fresh-worker benchmark: a freshly started reader worker's first real upload.

Run: ``.venv/bin/python -m bench.bench_first_upload`` (``--workers N`` fresh workers, default
12; about half a minute).

Set-up: ``N + 1`` records prefilled by :func:`forms.prefill.prefill`, every host text value
different between records, each completed through PDFium's form-fill API
(``tests/forms/viewers.py``, as Chrome saves it), alternately fully and partly
(``tests/plugin/uploads/journey.py``: other answers than the warm-up sample's), with typed
text that differs between records.
For each record a new one-worker :class:`forms.sandbox.ReaderPool` is started and waited for
(a ``stats`` request, which parses nothing); then, timed: that record's upload (the fresh
worker's first real upload, what :func:`forms.sandbox._warm_up` is meant to make cheap) and
the next record's upload (the worker's second, for comparison). Each pool is closed before the
next starts, so every "first" is a worker's very first read of a real upload.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def _ms(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return (f"median {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms   "
            f"min {ms[0]:6.2f}   max {ms[-1]:6.2f}   (n={len(ms)})")


def _prefill(i: int) -> dict[str, Any]:
    from tests.forms.conftest import SAMPLE_PREFILL

    data = dict(SAMPLE_PREFILL)
    for name, value in SAMPLE_PREFILL.items():
        if isinstance(value, str) and name not in (
            "subject_date_of_birth", "subject_type", "request_direction", "urgency",
            "requested_at", "practitioner_email", "manager_email",
        ):
            data[name] = f"{value} {i}"
    data["record_id"] = f"rec_bench_{i:04d}"
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=12)
    args = parser.parse_args()

    from sharewise.forms.prefill import normalise_prefill, prefill
    from sharewise.forms.reader import expected_display
    from sharewise.forms.sandbox import ReaderPool
    from sharewise.forms.spec import load_spec
    from tests.forms.viewers import fill_with_pdfium
    from tests.plugin.uploads.journey import as_typed, complete_answers, partial_answers

    spec = load_spec()
    uploads = []
    for i in range(args.workers + 1):
        data = _prefill(i)
        expected = normalise_prefill(data)
        given = complete_answers() if i % 2 == 0 else partial_answers()
        answers = as_typed({
            name: f"{value} ({i})" if spec[name].type in ("text", "multiline") else value
            for name, value in given.items()
        })
        pdf = fill_with_pdfium(prefill(data).pdf, answers)
        uploads.append((pdf, expected["record_id"], expected_display(expected["record_id"],
                                                                     expected)))

    first: list[float] = []
    second: list[float] = []
    for i in range(args.workers):
        pool = ReaderPool(1)
        try:
            pool.peak_rss(timeout=30)  # waits until the worker is up; parses nothing
            for sink, (pdf, record_id, shown) in ((first, uploads[i]), (second, uploads[i + 1])):
                started = time.perf_counter()
                read = pool.read(pdf, record_id, shown, 5.0)
                sink.append(time.perf_counter() - started)
                assert read.record_id == record_id and not read.problems, read.problems
        finally:
            pool.close()
    print(f"{args.workers} fresh one-worker pools; each reads two PDFium-completed uploads of "
          "different records (sandboxed read, pipe round trip included)")
    print(f"fresh worker, first real upload:  {_ms(first)}")
    print(f"same worker, second upload:       {_ms(second)}")


if __name__ == "__main__":
    main()
