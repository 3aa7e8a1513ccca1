"""Prefill benchmark: Sharewise's incremental-update prefill next to naive pypdf and pikepdf.

Run: ``.venv/bin/python -m bench.bench_prefill`` (``--rounds N`` to change the sample size).

All three fill the same template (``forms/decision_record.pdf``) with the same host values
(the test suite's sample prefill: 21 fields, Latin / Greek / Cyrillic names) and produce PDF
bytes with appearance streams:

* Sharewise: ``forms.prefill.prefill`` (validation, hash, incremental update), warm: the
  template is parsed once per process, before timing.
* naive pypdf: ``PdfWriter(clone_from=PdfReader(template))``, ``update_page_form_field_values``
  with ``auto_regenerate``, ``write`` to a ``BytesIO``.
* pikepdf: ``Pdf.open(template)``, ``pikepdf.form.Form`` with qpdf's default appearance
  generator, set the values, ``save`` to a ``BytesIO``.

The baselines are timing references only (qpdf's generator, for one, cannot encode Greek or
Cyrillic text in the form's Identity-H font); pikepdf is a dev/bench extra, not a runtime
dependency. Also prints the peak Python memory of one Sharewise fill (tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import statistics
import time
import tracemalloc
from collections.abc import Callable

import pikepdf
import pikepdf.form
from pypdf import PdfReader, PdfWriter

from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.spec import load_spec
from sharewise.forms.templatefile import TEMPLATE_PATH
from sharewise.forms.values import to_display
from tests.forms.conftest import SAMPLE_PREFILL


def display_values() -> dict[str, str]:
    spec = load_spec()
    out = {}
    for name, value in normalise_prefill(SAMPLE_PREFILL).items():
        shown = to_display(spec[name], value)
        if isinstance(shown, str):
            out[name] = shown
    return out


def sharewise() -> bytes:
    return prefill(SAMPLE_PREFILL).pdf


def naive_pypdf(template: bytes, values: dict[str, str]) -> Callable[[], bytes]:
    def run() -> bytes:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(template)))
        writer.update_page_form_field_values(None, values, auto_regenerate=True)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()

    return run


def with_pikepdf(template: bytes, values: dict[str, str]) -> Callable[[], bytes]:
    def run() -> bytes:
        with pikepdf.Pdf.open(io.BytesIO(template)) as pdf:
            form = pikepdf.form.Form(pdf, pikepdf.form.DefaultAppearanceStreamGenerator)
            for name, value in values.items():
                field = form[name]
                field.value = value
            out = io.BytesIO()
            pdf.save(out)
            return out.getvalue()

    return run


def measure(fn: Callable[[], bytes], rounds: int) -> tuple[float, float, int]:
    fn()  # warm up (imports, caches, first-call costs)
    times = []
    size = 0
    for _ in range(rounds):
        start = time.perf_counter()
        size = len(fn())
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, size


def peak_memory_mb(*, cold: bool) -> float:
    """Peak traced memory of one fill; ``cold`` includes parsing the template and font."""
    from sharewise.forms.fonts import field_font
    from sharewise.forms.prefill import _template

    if cold:
        _template.cache_clear()
        field_font.cache_clear()
    else:
        sharewise()
    gc.collect()
    tracemalloc.start()
    sharewise()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="fills per Sharewise run")
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its per-field warnings cost time
    template = TEMPLATE_PATH.read_bytes()
    values = display_values()
    base_rounds = max(10, args.rounds // 5)
    rows = [
        ("Sharewise prefill (warm)", measure(sharewise, args.rounds), args.rounds),
        ("naive pypdf", measure(naive_pypdf(template, values), base_rounds), base_rounds),
        ("pikepdf (qpdf appearances)", measure(with_pikepdf(template, values), base_rounds),
         base_rounds),
    ]
    print(f"template: {len(template)} bytes, {len(values)} prefilled fields")
    print(f"{'':30} {'median ms':>10} {'p95 ms':>8} {'rounds':>7} {'output bytes':>13}")
    for name, (median, p95, size), rounds in rows:
        print(f"{name:30} {median:10.2f} {p95:8.2f} {rounds:7d} {size:13d}")
    warm, cold = peak_memory_mb(cold=False), peak_memory_mb(cold=True)
    print(
        f"peak memory of one Sharewise fill (tracemalloc): {warm:.2f} MB warm, "
        f"{cold:.2f} MB for the first fill of a process (limit 50 MB)"
    )
    ratio = rows[1][1][0] / rows[0][1][0]
    print(f"Sharewise is {ratio:.0f}x faster than naive pypdf (median)")
    print("target: Sharewise prefill under 2 ms median")
    final_median, final_p95, final_size = measure(finalise_sample, max(5, args.rounds // 20))
    print(f"finalise (fill, flatten, summary page; no target): median {final_median:.1f} ms, "
          f"p95 {final_p95:.1f} ms, {final_size} bytes")
    print(start_up())


def finalise_sample() -> bytes:
    """The final record of the sample prefill with a decision (no target; for reference)."""
    from datetime import UTC, datetime

    from sharewise.forms.finalise import finalise

    values = {**normalise_prefill(SAMPLE_PREFILL), "decision": "not_share",
              "decision_reasons": "Not necessary for the purpose."}
    return finalise(values, record_id=values["record_id"],
                    completed_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC), audit=[]).pdf


def start_up() -> str:
    """Import time of ``sharewise.forms.prefill`` and the first fill in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import time; t0 = time.perf_counter(); import sharewise.forms.prefill as p; "
        "from tests.forms.conftest import SAMPLE_PREFILL; t1 = time.perf_counter(); "
        "p.prefill(SAMPLE_PREFILL); t2 = time.perf_counter(); "
        "print(f'{(t1 - t0) * 1000:.0f} {(t2 - t1) * 1000:.0f}')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return (f"fresh process: importing sharewise.forms.prefill {out[0]} ms, first fill (parses the "
            f"template and its font) {out[1]} ms")


if __name__ == "__main__":
    main()
