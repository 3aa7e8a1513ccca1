"""Mutation fuzz of the read-back: random mutations of real filled forms (incremental save, full
rewrite, qpdf object streams) end every case with a clean result or a clean error, within the
sandbox's time bound.

2,000 seeded cases (:mod:`tests.forms.mutate`) are read with the in-process reader
(``read_upload(..., isolate=False)``), in 16 batches of 125 so that a failure names its seeds;
the cases run in two worker processes (both cores), each case timed on its own. A clean ending
is an accepted ``ReadBack`` of the right shape or an ``UploadRejected`` with a documented code
and one of the reader's own messages; anything else escaping the reader, or a case taking longer
than the sandbox's 5 s bound (the in-process path has no kill), is a finding. 50 more cases go
through the real sandbox (``isolate=True``) and must end the same way as in process.
``bench/fuzz_readback.py`` runs many more.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

import tests.forms.mutate as mutate
from sharewise.forms.reader import ReadBack, UploadRejected
from sharewise.forms.spec import load_spec
from tests.forms.mutate import (
    ACCEPTED,
    FAILURE,
    KNOWN_CODES,
    OPERATORS,
    TIME_BOUND,
    WATCHDOG,
    Base,
    Outcome,
    Record,
    build_bases,
    index_bases,
    make_case,
    read_case,
    run_seeds,
    sample_record,
    worker_pool,
)
from tests.forms.viewers import NORMALISED

BATCHES = 16
BATCH_SIZE = 125  # 2,000 cases in all: seeds 0 .. 1999
CHUNK = 16  # seeds per task sent to a worker process
JOBS = max(1, min(2, os.cpu_count() or 1))
SANDBOX_SEEDS = range(50_000, 50_050)
REPRODUCE = ".venv/bin/python -m bench.fuzz_readback --cases 1 --seed SEED"


@pytest.fixture(scope="module")
def raw_bases() -> dict[str, bytes]:
    return build_bases()


@pytest.fixture(scope="module")
def bases(raw_bases) -> dict[str, Base]:
    return index_bases(raw_bases)


@pytest.fixture(scope="module")
def record() -> Record:
    return sample_record()


@pytest.fixture
def quiet_pypdf(monkeypatch):
    """pypdf's recovery warnings stay off the test log (the reader still sees them)."""
    monkeypatch.setattr(logging.getLogger("pypdf"), "propagate", False)


class Batches:
    """Hands seeds to the fuzz worker processes, ``CHUNK`` at a time, the next batch queued
    while one is awaited (so both workers stay busy from one test to the next)."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool
        self.submitted: dict[int, list[tuple[list[int], Future]]] = {}

    def _send(self, seeds: list[int]) -> list[tuple[list[int], Future]]:
        chunks = [seeds[i:i + CHUNK] for i in range(0, len(seeds), CHUNK)]
        return [(chunk, self.pool.submit(run_seeds, chunk)) for chunk in chunks]

    def _submit(self, batch: int) -> None:
        if batch < BATCHES and batch not in self.submitted:
            first = batch * BATCH_SIZE
            self.submitted[batch] = self._send(list(range(first, first + BATCH_SIZE)))

    @staticmethod
    def _wait(sent: list[tuple[list[int], Future]]) -> tuple[list, list[str]]:
        results, unfinished = [], []
        for seeds, future in sent:
            try:
                results.extend(future.result(timeout=CHUNK * WATCHDOG + 30))
            except FutureTimeout:
                unfinished.append(f"seeds {seeds[0]}..{seeds[-1]}: no answer (a hang)")
            except Exception as exc:  # a worker process died: that is a finding too
                unfinished.append(f"seeds {seeds[0]}..{seeds[-1]}: {type(exc).__name__}: {exc}")
        return results, unfinished

    def batch(self, batch: int) -> tuple[list[tuple[int, str, Outcome]], list[str]]:
        """Batch ``batch``'s ``(seed, description, outcome)`` and the chunks that never
        finished."""
        self._submit(batch)
        self._submit(batch + 1)
        return self._wait(self.submitted.pop(batch))

    def run(self, seeds: list[int]) -> tuple[list[tuple[int, str, Outcome]], list[str]]:
        """The same for any seeds."""
        return self._wait(self._send(seeds))


@pytest.fixture(scope="module")
def batches(raw_bases) -> Iterator[Batches]:
    pool = worker_pool(raw_bases, JOBS)
    try:
        yield Batches(pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _report(failures: list[tuple[int, str, Outcome]], total: int) -> str:
    lines = [f"{len(failures)} of {total} mutated forms did not end cleanly "
             f"(rebuild one: {REPRODUCE}):"]
    for _, description, outcome in failures:
        lines += [f"  {description[:300]}", f"    -> {outcome.failure}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- the mutations themselves


def test_the_base_forms_are_real_filled_forms_that_read_back(raw_bases, record, quiet_pypdf):
    assert list(raw_bases) == ["incremental", "rewritten", "object_streams",
                               "object_streams_plain"]
    assert raw_bases["incremental"].count(b"%%EOF") >= 2  # PDFium appended an update
    assert raw_bases["rewritten"].count(b"%%EOF") == 1
    for name in ("object_streams", "object_streams_plain"):
        assert b"/ObjStm" in raw_bases[name] and b"/XRef" in raw_bases[name]
    assert b"/Type /ObjStm /Length" in raw_bases["object_streams_plain"]  # not compressed
    for name, data in raw_bases.items():
        outcome = read_case(data, record)
        assert outcome.kind == ACCEPTED, (name, outcome)
        assert outcome.readback is not None and outcome.readback.problems == ()
        for field, value in {**record.expected, **NORMALISED}.items():
            assert outcome.readback.values[field] == value, (name, field)


def test_a_seed_always_gives_the_same_case(raw_bases, bases):
    rebuilt = build_bases()
    assert rebuilt == raw_bases  # PDFium's random /ID pinned: the same bytes every run
    again = index_bases(rebuilt)
    for seed in (0, 1, 77, 1999, 123_456):
        first, second = make_case(seed, bases), make_case(seed, again)
        assert first == second
        assert first.data != raw_bases[first.base]


def test_the_cases_cover_every_base_and_operator(raw_bases, bases):
    cases = [make_case(seed, bases) for seed in range(400)]
    assert {c.base for c in cases} == set(raw_bases)
    used = Counter(m.split(":")[0] for c in cases for m in c.mutations)
    assert set(OPERATORS) <= set(used), used
    assert used["repair_offsets"] > 50
    assert {len([m for m in c.mutations if not m.startswith("repair_offsets")])
            for c in cases} >= {1, 2, 3, 4}
    assert all(c.data != raw_bases[c.base] for c in cases)
    # most cases still look like a PDF to the cheap checks: the fuzz reaches the parser
    reach = sum(c.data.startswith(b"%PDF-") and b"%%EOF" in c.data[-1024:] for c in cases)
    assert reach >= 0.85 * len(cases)


def test_the_judge_tells_a_clean_ending_from_anything_else(raw_bases, record, monkeypatch,
                                                           quiet_pypdf):
    """The fuzz can fail: an exception other than a refusal, an unknown code, a message that is
    not the reader's, a wrong result and a case over the time bound are each a failure."""
    form = raw_bases["rewritten"]
    assert read_case(b"%PDF-1.7\n", record).kind == "malformed"  # a clean error is not one
    assert read_case(form, record, time_bound=0.0).kind == FAILURE  # over the bound

    def raising(error):
        def read_upload(*args, **kwargs):
            raise error
        return read_upload

    for error, says in [
        (KeyError("/Root"), "KeyError"),
        (RecursionError(), "RecursionError"),
        (UploadRejected("bogus", "A message."), "unknown code"),
        (UploadRejected("malformed", "pypdf: invalid xref entry at 1234"), "not one of"),
    ]:
        monkeypatch.setattr(mutate, "read_upload", raising(error))
        outcome = read_case(form, record)
        assert outcome.kind == FAILURE and says in outcome.failure, outcome
    readback = ReadBack({}, record.record_id, None, ())
    monkeypatch.setattr(mutate, "read_upload", lambda *a, **k: readback)
    assert "spec's fields" in read_case(form, record).failure
    other = ReadBack({n: None for n in load_spec().names}, "rec_other", None, ())
    monkeypatch.setattr(mutate, "read_upload", lambda *a, **k: other)
    assert "rec_other" in read_case(form, record).failure


def test_every_documented_code_is_one_of_the_readers():
    for code in KNOWN_CODES:
        assert UploadRejected.checked(code, None).code == code
    assert UploadRejected.checked("no_such_code", None).code == "too_complex"


# ---------------------------------------------------------------- the fuzz


@pytest.mark.parametrize("batch", range(BATCHES), ids=lambda b: f"seeds_{b * BATCH_SIZE}")
def test_mutated_forms_end_cleanly_within_the_time_bound(batches, batch):
    results, unfinished = batches.batch(batch)
    assert not unfinished, unfinished
    assert [seed for seed, _, _ in results] == list(
        range(batch * BATCH_SIZE, (batch + 1) * BATCH_SIZE))
    failures = [item for item in results if item[2].kind == FAILURE]
    assert not failures, _report(failures, len(results))
    assert all(o.seconds <= TIME_BOUND for _, _, o in results)
    kinds = Counter(outcome.kind for _, _, outcome in results)
    # not vacuous: the mutations are read, some survive and some are refused for several reasons
    assert kinds[ACCEPTED] and len(set(kinds) - {ACCEPTED}) >= 2, kinds
    assert set(kinds) - {ACCEPTED} <= KNOWN_CODES


def test_the_sandbox_ends_mutated_forms_the_same_way(batches, bases, raw_bases, record,
                                                     quiet_pypdf):
    """The worker path (``isolate=True``, two calls at a time as the pool has two workers):
    the same clean outcome as in process (a worker's bounds may only turn a case into
    ``too_complex``), and the same values when accepted."""
    warm = read_case(raw_bases["incremental"], record, isolate=True)  # a worker is up
    assert warm.kind == ACCEPTED, warm
    in_process, unfinished = batches.run(list(SANDBOX_SEEDS))
    assert not unfinished, unfinished
    cases = [make_case(seed, bases) for seed in SANDBOX_SEEDS]
    with ThreadPoolExecutor(2) as threads:
        sandboxed = list(threads.map(lambda c: read_case(c.data, record, isolate=True), cases))
    failures, different = [], []
    for case, (seed, _, here), there in zip(cases, in_process, sandboxed, strict=True):
        assert seed == case.seed
        failures += [(seed, case.describe(), o) for o in (here, there) if o.kind == FAILURE]
        if FAILURE in (here.kind, there.kind) or there.kind == "too_complex":
            continue
        if here.kind != there.kind or (
            here.kind == ACCEPTED and here.readback.values != there.readback.values
        ):
            different.append(f"{case.describe()[:200]}: in process {here.kind}, "
                             f"sandboxed {there.kind}")
    assert not failures, _report(failures, 2 * len(cases))
    assert not different, "\n".join(different)
    kinds = Counter(o.kind for o in sandboxed)
    assert kinds[ACCEPTED] and len(set(kinds) - {ACCEPTED}) >= 2, kinds
