"""The sandbox: a worker that overruns its time or memory is killed and replaced, the caller
gets a clean refusal and carries on; memory stays under the bound for a 12 MB upload."""

from __future__ import annotations

import os
import signal
import threading
import time

import badpdfs
import psutil
import pytest

from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.reader import UploadRejected, expected_display
from sharewise.forms.sandbox import ReaderPool

MiB = 1024 * 1024


@pytest.fixture
def form(sample_prefill):
    expected = normalise_prefill(sample_prefill)
    record_id = expected["record_id"]
    return prefill(sample_prefill).pdf, record_id, expected_display(record_id, expected)


@pytest.fixture
def pool():
    p = ReaderPool(1)
    yield p
    p.close()


def test_timeout_kills_and_replaces_the_worker(pool, form):
    pdf, record_id, shown = form
    pool.read(pdf, record_id, shown, 5.0)  # warm
    [first] = pool.worker_pids()
    started = time.perf_counter()
    with pytest.raises(UploadRejected) as caught:
        pool.read(badpdfs.padded_upload(pdf, 4 * MiB), record_id, shown, 0.001)
    assert caught.value.code == "too_complex"
    assert time.perf_counter() - started < 10  # a bound; the kill is immediate
    assert not psutil.pid_exists(first)  # killed and reaped, not left a zombie
    assert pool.worker_pids() == []  # replaced when the next upload needs one
    result = pool.read(pdf, record_id, shown, 5.0)
    assert result.values["record_id"] == record_id
    [second] = pool.worker_pids()
    assert second != first


def test_the_worker_refuses_bytes_that_do_not_start_with_the_header(pool, form):
    """A caller that skipped the pre-parse check still gets ``not_pdf`` for the form inside a
    stored ZIP: the worker checks the header before parsing too."""
    pdf, record_id, shown = form
    with pytest.raises(UploadRejected) as caught:
        pool.read(badpdfs.zip_stored(pdf), record_id, shown, 5.0)
    assert caught.value.code == "not_pdf"
    assert pool.read(pdf, record_id, shown, 5.0).values["record_id"] == record_id


def test_memory_bound_refuses_and_the_pool_recovers(form):
    pdf, record_id, shown = form
    small = ReaderPool(1, memory_limit=140 * MiB)
    try:
        with pytest.raises(UploadRejected) as caught:
            small.read(badpdfs.padded_upload(pdf, 12 * MiB - 64), record_id, shown, 10.0)
        assert caught.value.code == "too_complex"
        assert small.read(pdf, record_id, shown, 5.0).values["record_id"] == record_id
    finally:
        small.close()


def test_worker_killed_while_idle_is_replaced_transparently(pool, form):
    pdf, record_id, shown = form
    pool.read(pdf, record_id, shown, 5.0)
    [pid] = pool.worker_pids()
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(timeout=5)
    assert pool.read(pdf, record_id, shown, 5.0).values["record_id"] == record_id


def test_a_12_mb_upload_keeps_the_worker_under_300_mb(pool, form):
    pdf, record_id, shown = form
    upload = badpdfs.with_big_stream(pdf, 12 * MiB - 1024)
    assert 11 * MiB < len(upload) <= 12 * MiB
    assert pool.read(upload, record_id, shown, 5.0).values["record_id"] == record_id
    assert pool.peak_rss() < 300 * 1000 * 1000


def test_a_workers_memory_does_not_grow_from_upload_to_upload(pool, form):
    """A parse's objects (cyclic: pypdf's objects refer to their reader) are collected after
    each reply, not left for a collection that a parse no longer triggers."""
    pdf, record_id, shown = form
    for _ in range(5):
        pool.read(pdf, record_id, shown, 5.0)
    worker = psutil.Process(pool.worker_pids()[0])
    before = worker.memory_info().rss
    for _ in range(60):
        pool.read(pdf, record_id, shown, 5.0)
    assert worker.memory_info().rss - before < 4 * MiB


def test_a_hostile_12_mb_text_value_is_refused_within_the_bound(pool, form):
    pdf, record_id, shown = form
    upload = badpdfs.padded_upload(pdf, 12 * MiB - 64)
    assert len(upload) <= 12 * MiB
    started = time.perf_counter()
    try:
        pool.read(upload, record_id, shown, 5.0)
    except UploadRejected as rejected:  # the memory bound or the time bound ended it
        assert rejected.code == "too_complex"
    else:  # read within the bound: then it stayed under it
        assert pool.peak_rss() < 300 * 1000 * 1000
    assert time.perf_counter() - started < 15  # bounded, not a speed target
    assert pool.read(pdf, record_id, shown, 5.0).values["record_id"] == record_id


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_wakes_waiting_callers_and_leaves_no_process_or_descriptor(form):
    pdf, record_id, shown = form
    fds_before = _open_fds()
    children_before = {p.pid for p in psutil.Process().children()}
    shared = ReaderPool(1)
    slow = badpdfs.padded_upload(pdf, 4 * MiB)
    outcomes: list[str] = []
    busy = threading.Event()

    def work() -> None:
        busy.set()
        try:
            shared.read(slow, record_id, shown, 3.0)
            outcomes.append("read")
        except UploadRejected as rejected:
            outcomes.append(rejected.code)
        except RuntimeError:
            outcomes.append("closed")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    busy.wait(5)
    while shared.idle_count():  # until one caller holds the only worker
        time.sleep(0.01)
    shared.close()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)  # nobody waits for ever
    # the caller holding the worker finishes (read or refused); the three waiting get the error
    assert sorted(outcomes)[:3] == ["closed"] * 3 and len(outcomes) == 4
    with pytest.raises(RuntimeError):
        shared.read(pdf, record_id, shown, 5.0)
    # every worker was reaped (no zombie) and every socket closed
    assert {p.pid for p in psutil.Process().children()} == children_before
    assert _open_fds() == fds_before


def test_concurrent_callers_share_the_pool_through_timeouts_and_every_worker_is_reaped(form):
    pdf, record_id, shown = form
    children_before = {p.pid for p in psutil.Process().children()}
    shared = ReaderPool(2)
    slow = badpdfs.padded_upload(pdf, 4 * MiB)
    codes: list[str] = []
    errors: list[BaseException] = []

    def work(data: bytes, timeout: float) -> None:
        try:
            for _ in range(3):
                try:
                    result = shared.read(data, record_id, shown, timeout)
                    codes.append(result.values["record_id"])
                except UploadRejected as rejected:
                    codes.append(rejected.code)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(pdf, 5.0)) for _ in range(3)]
    threads += [threading.Thread(target=work, args=(slow, 0.001)) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        shared.close()
    assert not errors
    assert sorted(codes) == sorted([record_id] * 9 + ["too_complex"] * 6)
    assert {p.pid for p in psutil.Process().children()} == children_before


def test_a_worker_that_fails_says_so_in_one_line_without_a_traceback():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "sharewise.forms.sandbox", "987", str(256 * MiB), "1"],
        capture_output=True, timeout=30, text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "stopped: OSError" in proc.stderr


def test_replies_are_json_checked_for_shape_and_never_unpickled():
    import pickle
    import socket
    from multiprocessing.connection import Connection

    from sharewise.forms.sandbox import _readback, _receive

    ours, theirs = socket.socketpair()
    left, right = Connection(ours.detach()), Connection(theirs.detach())
    try:
        right.send_bytes(pickle.dumps(("ok", {"values": {}})))
        with pytest.raises(ValueError):
            _receive(left)
        right.send_bytes(b'{"not": "a list"}')
        with pytest.raises(ValueError):
            _receive(left)
        right.send_bytes(b'["rejected", "xfa", null]')
        assert _receive(left) == ["rejected", "xfa", None]
    finally:
        left.close()
        right.close()
    good = {"values": {"decision": "share", "check_secure": True, "shared_on": None},
            "record_id": "rec_1", "prefill_hash": None,
            "problems": [["shared_on", 6, "Rule 6: give the date."]]}
    result = _readback(good)
    assert result.values["check_secure"] is True and result.problems[0].rule == 6
    for bad in ({**good, "values": {"decision": ["share"]}}, {**good, "record_id": 7},
                {**good, "problems": [["x"]]}, {"values": {}}):
        with pytest.raises((KeyError, TypeError, ValueError)):
            _readback(bad)


def test_a_refusal_from_a_worker_keeps_only_known_codes_and_messages():
    assert UploadRejected.checked("xfa", None).code == "xfa"
    planted = UploadRejected.checked("tampered", "Zoë Łódź was changed to Someone Else")
    assert planted.code == "tampered" and "Zoë" not in planted.message
    assert UploadRejected.checked("rm -rf", "anything").code == "too_complex"
    assert UploadRejected.checked(["xfa"], None).code == "too_complex"
    from sharewise.forms.reader import _MESSAGES

    kept = UploadRejected.checked("active_content", _MESSAGES["attachments"])
    assert kept.message == _MESSAGES["attachments"]  # the reader's own variant survives


def test_a_worker_whose_parent_dies_exits_by_itself():
    """The service killed outright (no atexit): its workers do not live on as orphans, even
    one whose socket never reaches end of file (here the test keeps the other end open)."""
    import json
    import socket
    import subprocess
    import sys
    from multiprocessing.connection import Connection

    ours, theirs = socket.socketpair()
    fd = theirs.fileno()
    spawn = (
        "import os, subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-m', 'sharewise.forms.sandbox', '{fd}', "
        f"'{256 * MiB}', '5', str(os.getpid())], pass_fds=({fd},), stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL); print(p.pid)"
    )
    starter = subprocess.run([sys.executable, "-c", spawn], pass_fds=(fd,), capture_output=True,
                             text=True, timeout=30, check=True)
    theirs.close()
    worker = int(starter.stdout)  # its parent has already exited
    conn = Connection(ours.detach())
    try:
        assert conn.poll(30) and json.loads(conn.recv_bytes())[0] == "ready"
        assert conn.poll(10), "the orphaned worker is still running"
        with pytest.raises(EOFError):
            conn.recv_bytes()
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while psutil.pid_exists(worker) and time.monotonic() < deadline:
        try:
            if psutil.Process(worker).status() == psutil.STATUS_ZOMBIE:
                break  # exited; reaping it is its new parent's business
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        assert not psutil.pid_exists(worker)


def test_workers_get_no_service_settings_or_secrets(monkeypatch):
    monkeypatch.setenv("SHAREWISE_SECRET_KEY", "not-for-workers")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:password@db/x")
    shared = ReaderPool(1)
    try:
        shared.peak_rss()  # the worker is up (past exec), so its environment is its own
        [pid] = shared.worker_pids()
        environ = psutil.Process(pid).environ()
    finally:
        shared.close()
    assert "SHAREWISE_SECRET_KEY" not in environ and "DATABASE_URL" not in environ
    assert "PYTHONPATH" in environ


def test_workers_start_when_needed_and_retire_when_idle(form):
    """An idle service keeps no reader process: a pool starts workers for uploads and stops
    each one after ``idle_timeout`` seconds without an upload (reaped: no zombie)."""
    pdf, record_id, shown = form
    children_before = {p.pid for p in psutil.Process().children()}
    lazy = ReaderPool(2, idle_timeout=0.5, prestart=0)
    try:
        assert lazy.worker_pids() == [] and not _children_since(children_before)
        first = lazy.read(pdf, record_id, shown, 10.0)
        assert first.values["record_id"] == record_id
        [pid] = lazy.worker_pids()  # one upload needed one worker
        deadline = time.monotonic() + 10
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not psutil.pid_exists(pid)  # retired and reaped
        assert lazy.worker_pids() == [] and not _children_since(children_before)
        again = lazy.read(pdf, record_id, shown, 10.0)  # a new worker for the next upload
        assert again.values == first.values
        assert len(lazy.worker_pids()) == 1 and lazy.worker_pids() != [pid]
    finally:
        lazy.close()
    assert not _children_since(children_before)


def _children_since(before: set[int]) -> set[int]:
    return {p.pid for p in psutil.Process().children()} - before
