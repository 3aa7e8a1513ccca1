"""Read-back benchmark: reading and validating a completed upload, next to plain pypdf.

Run: ``.venv/bin/python -m bench.bench_readback`` (``--records N --rounds N`` to change the
sample size).

Data: ``--records`` different records (record id, names and dates differ), each prefilled
with ``forms.prefill.prefill`` and then completed through PDFium's form-fill API (the test
harness ``tests/forms/viewers.py``: clicks, typing, check boxes, radio buttons), once saved
as an incremental update the way Chrome saves (about 340 KB) and once as a rewritten file
(about 170 KB), and that rewritten file saved again by qpdf with compressed object streams
(as full saves by Acrobat and many tools are; about 150 KB). Each round reads every file
once with each of, interleaved so machine load hits all alike:

* baseline: ``PdfReader(BytesIO(data)).get_fields()`` (plain pypdf, no checks at all);
* Sharewise in-process: ``read_upload(..., isolate=False)`` + ``validate(values)``;
* Sharewise sandboxed: ``read_upload(..., isolate=True)`` + ``validate(values)``, the path
  the service uses (the process's pool of ``forms.sandbox`` workers, two by default, used in
  turn; includes the pipe round trip).

Every read parses the file afresh (the reader keeps nothing between uploads), so every round
measures the same work.

Finally: the peak resident size of a fresh worker that reads a 12 MB upload (the form plus a
12 MB embedded stream, as a photo or font would add), with the command's target of 300 MB.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from datetime import date

from pypdf import PdfReader

from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.reader import expected_display
from sharewise.forms.sandbox import ReaderPool, get_pool, read_upload
from sharewise.forms.spec import load_spec
from sharewise.forms.validate import validate
from tests.forms.badpdfs import with_big_stream, with_object_streams
from tests.forms.conftest import SAMPLE_PREFILL
from tests.forms.viewers import ENTERED, fill_with_pdfium

TODAY = date(2026, 11, 24)


def record_prefill(i: int) -> dict:
    """The sample prefill made into record ``i``: every host text value differs from every
    other record's (as names, emails, teams and references do between real records), so no
    field holding a value is byte-identical between two records' uploads."""
    data = dict(SAMPLE_PREFILL)
    for name, value in SAMPLE_PREFILL.items():
        if name.endswith("_email"):
            data[name] = f"{i}.{value}"
        elif isinstance(value, str) and " " in value:
            data[name] = f"{value} {i}"
    data.update(record_id=f"rec_bench_{i:04d}", host_request_id=f"REQ-{i:06d}",
                case_reference=f"CASE/{i}")
    return data


def uploads(
    count: int, *, incremental: bool = True, object_streams: bool = False, first: int = 0
) -> list[tuple[bytes, str, dict]]:
    """Completed uploads of records ``first`` .. ``first + count - 1``."""
    spec = load_spec()
    out = []
    for i in range(first, first + count):
        data = record_prefill(i)
        entered = {  # typed text differs between records too
            name: f"{value} ({i})" if spec[name].type in ("text", "multiline") else value
            for name, value in ENTERED.items()
        }
        expected = normalise_prefill(data)
        pdf = fill_with_pdfium(prefill(data).pdf, entered, incremental=incremental)
        if object_streams:
            pdf = with_object_streams(pdf)
        out.append((pdf, expected["record_id"], expected))
    return out


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    pool = get_pool()
    warm = uploads(1)[0]
    pool.read(warm[0], warm[1], expected_display(warm[1], warm[2]), 5.0)  # workers up
    read_upload(warm[0], record_id=warm[1], expected=warm[2], isolate=False)  # imports done

    def baseline(item: tuple[bytes, str, dict]) -> None:
        PdfReader(io.BytesIO(item[0])).get_fields()

    def in_process(item: tuple[bytes, str, dict]) -> None:
        result = read_upload(item[0], record_id=item[1], expected=item[2], isolate=False)
        assert not validate(result.values, today=TODAY)

    def sandboxed(item: tuple[bytes, str, dict]) -> None:
        result = read_upload(item[0], record_id=item[1], expected=item[2], isolate=True)
        assert not validate(result.values, today=TODAY)

    runs = {"baseline": baseline, "in_process": in_process, "sandboxed": sandboxed}
    labels = {"baseline": "baseline pypdf get_fields()",
              "in_process": "Sharewise read+validate, in-process",
              "sandboxed": "Sharewise read+validate, sandboxed"}
    kinds = (
        ("incremental update (as Chrome saves)", True, False),
        ("rewritten file (FPDF_NO_INCREMENTAL)", False, False),
        ("then rewritten by qpdf with object streams", False, True),
    )
    for number, (kind, incremental, object_streams) in enumerate(kinds, start=1):
        # records of their own for each kind of file (a record's upload is read once or twice
        # in real use, not once per kind of file)
        files = uploads(args.records, incremental=incremental,
                        object_streams=object_streams, first=number * 1000)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for item in files:
                for name, run in runs.items():
                    started = time.perf_counter()
                    run(item)
                    times[name].append(time.perf_counter() - started)
        size = statistics.median(len(f[0]) for f in files) / 1024
        print(f"{len(files)} PDFium-completed uploads of different records, {kind}, "
              f"median {size:.0f} KB; {args.rounds} rounds")
        for name in runs:
            print(f"  {labels[name]:<38} {summary(times[name])}")
    print("target: sandboxed read-back plus validation under 15 ms median")
    trips = []
    for _ in range(200):
        started = time.perf_counter()
        pool.peak_rss()
        trips.append(time.perf_counter() - started)
    print(f"  sandbox round trip of a request without an upload: {summary(trips)}")

    fresh = ReaderPool(1)
    try:
        base = files[0]
        big = with_big_stream(base[0], 12 * 1024 * 1024 - 1024)
        shown = expected_display(base[1], base[2])
        started = time.perf_counter()
        fresh.read(big, base[1], shown, 10.0)
        elapsed = time.perf_counter() - started
        peak = fresh.peak_rss() / 1e6
    finally:
        fresh.close()
    print(f"12 MB upload ({len(big) / 1e6:.1f} MB): read in {elapsed * 1000:.0f} ms, "
          f"worker peak RSS {peak:.0f} MB (target < 300 MB; the worker's address space is "
          f"capped at 286 MiB)")
    pool.close()


if __name__ == "__main__":
    main()
