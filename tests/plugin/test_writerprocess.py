"""plugin.writerprocess: the writer's loop, its client and the supervisor, on real sockets,
real SQLite and real processes (the intake writer end to end: tests/plugin/records/)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from sharewise.plugin.db import database_file, engine_for
from sharewise.plugin.groupcommit import GroupCommitter
from sharewise.plugin.records.models import WebhookEvent
from sharewise.plugin.writerprocess import (
    SUPPORTED,
    WriterClient,
    WriterConflict,
    WriterFailed,
    WriterLost,
    WriterServer,
    WriterSupervisor,
    WriterUnavailable,
    _frame,
    address_for,
)
from tests.polling import wait_until

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="the writer process is Linux only")

EVENTS = WebhookEvent.__table__


def _write(conn, items):
    """One webhook_events row per item (unique on tenant + webhook_id); result: its id."""
    rows = conn.execute(insert(EVENTS).returning(EVENTS.c.id), [
        {"tenant": "t", "webhook_id": key, "event_type": "x", "response_status": 200,
         "response_body": {}} for key in items]).all()
    return [row.id for row in rows]


def _keys(app):
    with engine_for(app).connect() as conn:
        return sorted(conn.scalars(select(EVENTS.c.webhook_id)).all())


@pytest.fixture
def backend() -> str:
    """The writer process serves a SQLite database file: these tests run on SQLite only."""
    return "sqlite"


@pytest.fixture
def sqlite_app(app):
    return app


@pytest.fixture
def served(sqlite_app):
    """A WriterServer in a thread of this process, on the app's database."""
    address = address_for(database_file(sqlite_app.config["DATABASE_URL"]))
    committer = GroupCommitter(engine_for(sqlite_app), _write, name="test-writer")
    server = WriterServer(committer, address, decode=str)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server, committer, address
    server.stopping = True
    thread.join(5)
    server.close()


def _submit_all(address, keys, timeout=10.0):
    """Each key submitted by a thread of its own; results[i] is the i-th key's outcome."""
    client = WriterClient(address)
    results = [None] * len(keys)

    def run(i, key):
        try:
            results[i] = client.submit(key, timeout)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, k)) for i, k in enumerate(keys)]
    for t in threads:
        t.start()
    return threads, results


def test_items_from_many_threads_join_the_batch_waiting_for_the_lock(sqlite_app, served):
    server, committer, address = served
    keys = [f"k{i}" for i in range(8)]
    with engine_for(sqlite_app).begin():  # holds the write lock: the writer waits in BEGIN
        threads, results = _submit_all(address, keys)
        time.sleep(0.5)  # every client has sent by now
    for t in threads:
        t.join(10)
    assert all(isinstance(v, int) for v in results), results
    assert len(set(results)) == 8
    assert _keys(sqlite_app) == keys
    # the first item read begins the transaction; the rest, sent while it waited for the
    # lock, joins it (a second batch only if a thread had not sent within the 0.5 s)
    assert committer.stats[1] == 8 and committer.stats[0] <= 2, committer.stats


def test_a_duplicate_is_a_conflict_and_the_rest_is_kept(sqlite_app, served):
    _server, _committer, address = served
    with engine_for(sqlite_app).begin():
        threads, results = _submit_all(address, ["same", "same", "other"])
        time.sleep(0.3)
    for t in threads:
        t.join(10)
    same = results[:2]
    assert sorted(type(v).__name__ for v in same) == ["WriterConflict", "int"], results
    assert isinstance(results[2], int)
    assert _keys(sqlite_app) == ["other", "same"]


def test_a_message_longer_than_one_read_is_put_together(sqlite_app, served):
    """The writer reads at most 64 KB at a time: a 300 KB item arrives in several reads."""
    _server, _committer, address = served
    big = "big-" + "x" * 300_000
    threads, results = _submit_all(address, [big, "small"])
    for t in threads:
        t.join(10)
    assert all(isinstance(v, int) for v in results), results
    assert _keys(sqlite_app) == sorted([big, "small"])


def test_both_answers_for_one_key(sqlite_app, served):
    _server, _committer, address = served
    client = WriterClient(address)
    first = client.submit("dup", 5)
    with pytest.raises(WriterConflict):
        client.submit("dup", 5)
    assert isinstance(first, int)
    assert _keys(sqlite_app) == ["dup"]


def test_not_taken_before_the_deadline_is_a_timeout_and_not_stored(sqlite_app, served):
    _server, _committer, address = served
    client = WriterClient(address)
    outcome = {}

    def run():
        try:
            outcome["v"] = client.submit("late", 0.3)
        except Exception as exc:  # noqa: BLE001
            outcome["v"] = exc

    with engine_for(sqlite_app).begin():
        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)  # the deadline passes while the writer waits for the lock
    t.join(10)
    assert isinstance(outcome["v"], TimeoutError)
    assert _keys(sqlite_app) == []


def test_no_writer_is_unavailable_at_once(tmp_path):
    client = WriterClient(address_for(str(tmp_path / "none.db")))
    started = time.monotonic()
    with pytest.raises(WriterUnavailable):
        client.submit("x", 5)
    with pytest.raises(WriterUnavailable):  # and not tried again for a moment
        client.submit("y", 5)
    assert time.monotonic() - started < 1


def test_an_item_that_is_not_json_is_not_sent(sqlite_app, served):
    _server, committer, address = served
    import dataclasses
    from datetime import UTC, datetime

    @dataclasses.dataclass
    class Row:
        key: str

    # what the standard library refused is refused still (orjson could write the last two)
    for item in ({"when": object()}, {"when": datetime(2026, 1, 1, tzinfo=UTC)}, [Row("k")]):
        with pytest.raises(WriterUnavailable, match="not sendable"):
            WriterClient(address).submit(item, 5)
    assert committer.stats == [0, 0]


def test_stopping_answers_pending_items_local_and_writes_nothing(sqlite_app):
    address = address_for(database_file(sqlite_app.config["DATABASE_URL"]))
    committer = GroupCommitter(engine_for(sqlite_app), _write)
    server = WriterServer(committer, address, decode=str)
    outcome = {}

    def run():
        try:
            outcome["v"] = WriterClient(address).submit("pending", 5)
        except Exception as exc:  # noqa: BLE001
            outcome["v"] = exc

    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: server._poll(0.05) >= 0 and server._pending)  # read, not written
    server.close()
    t.join(10)
    assert isinstance(outcome["v"], WriterUnavailable)
    assert _keys(sqlite_app) == []


@pytest.mark.parametrize("payload", [
    b"hello",  # not JSON
    b'["w", "one", 1.0, "k"]',  # sequence number not a number
    b'["w", 1, "soon", "k"]',  # deadline not a number
    b'["w", 1, Infinity, "k"]',  # deadline not finite
    b'["x", 1, 1.0, "k"]',  # not a write
    b'{"w": 1}',  # not a list
    b"[" * 100_000,  # nested deeper than the parser goes
])
def test_a_malformed_message_closes_only_its_connection(sqlite_app, served, payload):
    server, _committer, address = served
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.connect(address)
    bad.sendall(len(payload).to_bytes(4, "big") + payload)
    bad.settimeout(5)
    assert bad.recv(10) == b""  # closed by the writer
    bad.close()
    assert isinstance(WriterClient(address).submit("fine", 5), int)
    assert _keys(sqlite_app) == ["fine"]
    assert not server.stopping


def test_a_connection_lost_after_sending_is_writer_lost(tmp_path):
    address = address_for(str(tmp_path / "lost.db"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)

    def take_and_die():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()  # what a writer killed mid-batch looks like to its senders

    t = threading.Thread(target=take_and_die)
    t.start()
    with pytest.raises(WriterLost):
        WriterClient(address).submit("x", 5)
    t.join(5)
    listener.close()


def test_the_writer_refuses_processes_of_another_user(sqlite_app, served):
    """Without root: the writer takes itself for another user, so this process is one."""
    server, _committer, address = served
    server._uid = os.getuid() + 1
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(address)
    raw.settimeout(5)
    assert raw.recv(10) == b""  # closed at once, nothing read
    raw.close()
    assert _keys(sqlite_app) == []


def test_a_client_refuses_a_writer_of_another_user(sqlite_app, served, monkeypatch):
    """Without root: this process takes itself for another user than the writer's."""
    _server, committer, address = served
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)
    with pytest.raises(WriterUnavailable):
        WriterClient(address).submit("personal data", 5)
    monkeypatch.undo()
    assert committer.stats == [0, 0] and _keys(sqlite_app) == []


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_connections_from_another_user_are_refused(sqlite_app, served):
    _server, _committer, address = served
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                WriterClient(address).submit("intruder", 5)
                code = 1
            except (WriterLost, WriterUnavailable):
                code = 0  # the writer closed the connection: at once, or before answering
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _keys(sqlite_app) == []


def test_a_forked_child_does_not_share_its_parents_connection(sqlite_app, served):
    _server, _committer, address = served
    client = WriterClient(address)
    client.submit("parent", 5)
    assert client._local.sock is not None
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        ok = getattr(client._local, "sock", None) is None
        try:
            ok = ok and isinstance(client.submit("child", 5), int)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.submit("parent-again", 5)
    assert _keys(sqlite_app) == ["child", "parent", "parent-again"]


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a process as another user")
def test_a_writer_address_held_by_another_user_is_not_used(tmp_path):
    """Abstract socket names have no permissions: a process of another user that binds the
    address first gets no rows (they carry personal data)."""
    address = address_for(str(tmp_path / "db"), "v1")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the impostor, as user nobody
        try:
            os.setgid(65534)
            os.setuid(65534)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(address)
            listener.listen(4)
            os.write(ready_w, b"x")
            conn, _ = listener.accept()
            conn.settimeout(5)
            got = conn.recv(1024)
            os._exit(1 if got else 0)  # 1: it was sent something
        except Exception:  # noqa: BLE001
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        with pytest.raises(WriterUnavailable):
            WriterClient(address).submit("personal data", 5)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
    assert os.waitstatus_to_exitcode(status) == 0  # it received nothing


def test_other_wire_versions_have_other_addresses(tmp_path):
    assert address_for(str(tmp_path / "db"), "v1") != address_for(str(tmp_path / "db"), "v2")
    assert address_for(str(tmp_path / "db"), "v1") == address_for(str(tmp_path / "db"), "v1")


def test_once_a_thread_finds_the_writer_lost_every_thread_writes_for_itself(sqlite_app,
                                                                          served):
    _server, _committer, address = served
    client = WriterClient(address)
    outcome = {}

    def other_thread(name):
        try:
            outcome[name] = client.submit(name, 5)
        except Exception as exc:  # noqa: BLE001
            outcome[name] = exc

    t = threading.Thread(target=other_thread, args=("first",))
    t.start()
    t.join(10)
    assert isinstance(outcome["first"], int)  # that thread keeps its connection
    client.mark_down()  # what a WriterLost in some thread does
    t = threading.Thread(target=other_thread, args=("second",))  # a new thread: no socket
    t.start()
    t.join(10)
    assert isinstance(outcome["second"], WriterUnavailable)
    with pytest.raises(WriterUnavailable):
        client.submit("here", 5)
    assert _keys(sqlite_app) == ["first"]


def test_a_thread_with_a_connection_does_not_use_it_while_the_writer_is_down(sqlite_app,
                                                                              served):
    _server, _committer, address = served
    client = WriterClient(address)
    assert isinstance(client.submit("before", 5), int)
    assert client._local.sock is not None
    client.mark_down()
    with pytest.raises(WriterUnavailable):
        client.submit("meanwhile", 5)
    assert client._local.sock is None  # dropped, not waited on
    client._down_until = 0.0  # the moment has passed
    assert isinstance(client.submit("after", 5), int)
    assert _keys(sqlite_app) == ["after", "before"]


def test_an_item_whose_sender_hung_up_is_not_written(sqlite_app, served):
    server, committer, address = served
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(address)
    with engine_for(sqlite_app).begin():  # the writer waits for the lock with it read
        raw.sendall(_frame(["w", 1, time.monotonic() + 30, "abandoned"]))
        wait_until(lambda: server._pending)
        raw.close()
        time.sleep(0.2)
    wait_until(lambda: not server._pending)
    time.sleep(0.2)
    assert _keys(sqlite_app) == []
    assert committer.stats == [0, 0]


def test_a_batch_that_fails_before_taking_answers_every_sender_at_once(sqlite_app):
    address = address_for(database_file(sqlite_app.config["DATABASE_URL"]))

    class Unreachable(GroupCommitter):
        def run_batch(self, take):
            raise OSError("database unreachable")  # before take(), like a failed BEGIN

    server = WriterServer(Unreachable(engine_for(sqlite_app), _write), address, decode=str)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(WriterFailed, match="OSError"):
            WriterClient(address).submit("x", 30)
        assert time.monotonic() - started < 5  # not at its deadline
    finally:
        server.stopping = True
        thread.join(5)
        server.close()


def test_frames_over_the_limit_are_refused():
    with pytest.raises(ValueError):
        _frame(["w", 1, 0.0, "x" * (16 * 1024 * 1024)])


# ------------------------------------------------------------------------- supervisor

SLEEPER = """
import os, sys, time
from sharewise.plugin.writerprocess import die_with_parent
die_with_parent(int(os.environ["SHAREWISE_WRITER_PARENT"]))
with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(120)
"""


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split(") ")[1][0] != "Z"


def test_one_supervisor_runs_the_writer_and_restarts_it_another_takes_over(tmp_path):
    lock, started = str(tmp_path / "db.writer"), tmp_path / "started"
    argv = [sys.executable, "-c", SLEEPER, str(started)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    first = WriterSupervisor(lock, argv, env, poll=0.1, backoff=0.1)
    second = WriterSupervisor(lock, argv, env, poll=0.1, backoff=0.1)
    first.start()
    wait_until(lambda: len(_pids(started)) == 1)
    second.start()
    try:
        time.sleep(0.5)
        assert len(_pids(started)) == 1  # the second waits for the lock
        os.kill(_pids(started)[0], signal.SIGKILL)
        wait_until(lambda: len(_pids(started)) == 2)  # started again by the first
        assert first.starts == 2 and second.starts == 0
        first.stop()
        assert not _alive(_pids(started)[1])  # stopped with its supervisor
        wait_until(lambda: len(_pids(started)) == 3)  # the second took over
        assert second.starts == 1
    finally:
        first.stop()
        second.stop()
    assert not any(_alive(pid) for pid in _pids(started))


def test_the_writer_exits_when_the_supervising_process_dies(tmp_path):
    started = tmp_path / "started"
    script = f"""
import os, sys, time
from sharewise.plugin.writerprocess import WriterSupervisor
WriterSupervisor({str(tmp_path / 'db.writer')!r},
                 [sys.executable, "-c", {SLEEPER!r}, {str(started)!r}]).start()
time.sleep(120)
"""
    parent = subprocess.Popen([sys.executable, "-c", script],
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        wait_until(lambda: _pids(started))
        writer = _pids(started)[0]
        parent.kill()
        parent.wait()
        wait_until(lambda: not _alive(writer), timeout=10)
    finally:
        parent.kill()
        parent.wait()
        for pid in _pids(started):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_writer_that_keeps_failing_is_started_less_and_less_often(tmp_path):
    argv = [sys.executable, "-c", "raise SystemExit(1)"]
    supervisor = WriterSupervisor(str(tmp_path / "db.writer"), argv, poll=0.1, backoff=0.15)
    waits = []
    real_wait = supervisor.stop_event.wait

    def wait(timeout=None):
        if timeout != 0.2:  # not the check for the running writer's exit
            waits.append(timeout)
        return real_wait(timeout)

    supervisor.stop_event.wait = wait
    supervisor.start()
    try:
        wait_until(lambda: len(waits) >= 3, timeout=30)
    finally:
        supervisor.stop()
    assert waits[:3] == [0.15, 0.3, 0.6]  # doubled after every quick exit
    assert not supervisor.is_alive()


def test_a_writer_that_cannot_be_started_is_tried_again(tmp_path):
    argv = [str(tmp_path / "no-such-program")]
    supervisor = WriterSupervisor(str(tmp_path / "db.writer"), argv, poll=0.1, backoff=0.05)
    supervisor.start()
    try:
        wait_until(lambda: supervisor.starts >= 3, timeout=30)
        assert supervisor.is_alive()  # the OSError did not end the thread
        assert supervisor.process is None
    finally:
        supervisor.stop()


def _answering(address, answer):
    """A raw writer that reads one message and sends ``answer(seq)``: a list of chunks."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        data = conn.recv(65536)
        seq = json.loads(data[4:])[1]
        for chunk in answer(seq):
            conn.sendall(chunk)
            time.sleep(0.05)
        conn.recv(10)  # until the client hangs up
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_an_answer_in_pieces_is_put_together(tmp_path):
    address = address_for(str(tmp_path / "pieces.db"))

    def answer(seq):
        frame = _frame([seq, "ok", 42])
        return [frame[:2], frame[2:7], frame[7:]]

    thread = _answering(address, answer)
    client = WriterClient(address)
    assert client.submit("x", 5) == 42
    client._drop()
    thread.join(5)


def test_more_than_one_answer_is_a_lost_writer(tmp_path):
    address = address_for(str(tmp_path / "twice.db"))
    thread = _answering(address, lambda seq: [_frame([seq, "ok", 1]) + _frame([seq, "ok", 2])])
    with pytest.raises(WriterLost):
        WriterClient(address).submit("x", 5)
    thread.join(5)
