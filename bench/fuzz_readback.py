"""Read-back fuzz, the long run: many more seeded mutations of real filled forms than the suite's.

Run: ``.venv/bin/python -m bench.fuzz_readback --cases 20000 --seed 0`` (cases ``seed`` ..
``seed + cases - 1``; ``--jobs`` worker processes, both cores by default; ``--isolate`` to read
through the sandbox instead, ``--show N`` to list more of the slowest cases).

The cases are those of ``tests/forms/test_fuzz_readback.py`` (the same helper,
``tests/forms/mutate.py``; the suite runs seeds 0 to 1,999, so ``--seed 2000`` starts on cases
it does not run): a seed picks one of four real filled forms (PDFium incremental save, PDFium
full rewrite, qpdf object streams compressed and uncompressed) and stacks 1 to 4 mutations on
its bytes. Each case is read in a worker process with the in-process reader
(``read_upload(..., isolate=False)``) and must end with an accepted ``ReadBack`` of the right
shape or an ``UploadRejected`` with a documented code and one of the reader's own messages,
within the sandbox's time bound (5 s); a case still running after three times that is stopped
and counted as a failure (a hang).

Prints the count of each outcome (accepted, each refusal code, failures), the slowest cases
and every failure with its seed (rebuild one with ``--seed S --cases 1``), and exits 1 if any
case failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from collections import Counter
from concurrent.futures import as_completed

from tests.forms.mutate import (
    FAILURE,
    TIME_BOUND,
    WATCHDOG,
    Outcome,
    build_bases,
    index_bases,
    make_case,
    read_case,
    run_seeds,
    sample_record,
    worker_pool,
)

CHUNK = 50


def isolated(first: int, count: int, raw: dict[str, bytes]) -> list[tuple[int, str, Outcome]]:
    """Read cases through the sandbox (the process's pool of reader workers), one at a time."""
    bases = index_bases(raw)
    record = sample_record()
    read_case(raw["rewritten"], record, isolate=True)  # a worker is up before the first case
    results = []
    for seed in range(first, first + count):
        case = make_case(seed, bases)
        results.append((seed, case.describe(), read_case(case.data, record, isolate=True)))
    return results


def in_workers(
    first: int, count: int, raw: dict[str, bytes], jobs: int
) -> list[tuple[int, str, Outcome]]:
    """Read cases in ``jobs`` worker processes, ``CHUNK`` seeds at a time."""
    chunks = [list(range(start, min(first + count, start + CHUNK)))
              for start in range(first, first + count, CHUNK)]
    results: list[tuple[int, str, Outcome]] = []
    done = 0
    started = time.perf_counter()
    with worker_pool(raw, jobs) as pool:
        futures = {pool.submit(run_seeds, chunk): chunk for chunk in chunks}
        for future in as_completed(futures):
            try:
                results.extend(future.result())
            except Exception as exc:  # noqa: BLE001 - a worker process died: a finding
                results.extend((seed, f"seed {seed} (its worker process died)",
                                Outcome(FAILURE, 0.0, f"{type(exc).__name__}: {exc}"))
                               for seed in futures[future])
            done += 1
            if done % 20 == 0 or done == len(chunks):
                print(f"  {len(results)} / {count} cases, {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
    return sorted(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--isolate", action="store_true",
                        help="read through the sandbox workers (one case at a time)")
    parser.add_argument("--show", type=int, default=5, help="how many slowest cases to list")
    args = parser.parse_args()
    if args.cases < 1:
        parser.error("--cases must be at least 1")

    raw = build_bases()
    print("base forms: " + ", ".join(
        f"{name} {len(data) // 1024} KB sha256 {hashlib.sha256(data).hexdigest()[:12]}"
        for name, data in raw.items()))
    started = time.perf_counter()
    if args.isolate:
        logging.getLogger("pypdf").propagate = False
        results = isolated(args.seed, args.cases, raw)
    else:
        results = in_workers(args.seed, args.cases, raw, max(1, args.jobs))
    elapsed = time.perf_counter() - started

    counts = Counter(outcome.kind for _, _, outcome in results)
    path = "sandbox" if args.isolate else f"in-process reader, {args.jobs} worker processes"
    print(f"{len(results)} cases (seeds {args.seed} .. {args.seed + args.cases - 1}), {path}, "
          f"{elapsed:.0f} s")
    for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {kind:<16} {count:>7}  ({100 * count / len(results):5.1f} %)")
    by_time = sorted(results, key=lambda item: -item[2].seconds)
    print(f"slowest cases (time bound {TIME_BOUND:g} s, hang watchdog {WATCHDOG:g} s):")
    for _seed, description, outcome in by_time[:args.show]:
        print(f"  {outcome.seconds * 1000:8.1f} ms  {outcome.kind:<14} {description[:160]}")
    seconds = sorted(outcome.seconds for _, _, outcome in results)
    line = (f"case time: median {seconds[len(seconds) // 2] * 1000:.1f} ms, "
            f"p99 {seconds[int(0.99 * (len(seconds) - 1))] * 1000:.1f} ms")
    if not args.isolate:  # the parse's processor time (in the sandbox it is the worker's)
        cpu = sorted(outcome.cpu for _, _, outcome in results)
        line += (f"; processor time: median {cpu[len(cpu) // 2] * 1000:.1f} ms, "
                 f"total {sum(cpu):.0f} s")
    print(line)
    failures = [item for item in results if item[2].kind == FAILURE]
    for _seed, description, outcome in failures:
        print(f"FAILURE {description}\n  {outcome.failure}")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
