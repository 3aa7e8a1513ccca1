"""A writer process: one process per SQLite database commits the writes of every web process.

On the embedded default each web process commits its own group of intakes
(:mod:`sharewise.plugin.groupcommit`), and the processes hand SQLite's write lock to one another for
every batch. A writer process takes the items of all web processes into one batch instead:
fewer commits (one fsync each) and no hand-over of the lock between processes; the web
processes' threads only wait for an answer. Measured with two intake servers, writer on and
off, running at once in alternating slices: +4 to +15% intakes per second, median +7%
(docs/performance.md, session 6).

The pieces:

* :func:`address_for`: the writer's Unix socket, in Linux's abstract namespace, named after
  the database file and the items' wire format (so no socket file is left behind, no path
  length limit applies, and web processes of another version find no writer to talk to).
  An abstract name has no permissions, so both ends check the other's user
  (``SO_PEERCRED``): the writer serves only its own user's processes, and a web process
  sends nothing to a process of another user that bound the name first.
* :class:`WriterServer`: the writer's loop (one thread): reads the items every connection
  sends, and as soon as it has any, begins a transaction (waiting for the write lock),
  takes everything that has arrived by then, writes and commits it with
  :meth:`GroupCommitter.run_batch` and answers each item: its result, ``conflict`` (it broke
  a unique constraint: nothing of it kept), ``timeout`` (not taken before the sender's
  deadline: nothing kept) or ``error`` (the batch failed: nothing kept).
* :class:`WriterClient`: a web process's side, one connection per thread. It raises
  :class:`WriterUnavailable` when the item certainly was not written (no writer, or it
  was stopping, or its batch failed: :class:`WriterFailed`) and :class:`WriterLost` when
  the connection broke after the item was sent (the writer died: its transaction, if any,
  was rolled back with it; or it did not answer within the deadline and :data:`GRACE`).
  Either way the caller writes the item itself; after a loss it must allow for the writer
  having committed it. Deadlines are ``time.monotonic()`` values, which on Linux are the
  same clock in every process. The writer skips items whose sender has hung up.
* :class:`WriterSupervisor`: a thread in every web process. The one that holds an
  exclusive ``flock`` on ``<database>.writer`` runs the writer as its child and starts it
  again if it exits; the others wait for the lock, so when the supervising process exits
  another takes over. The writer asks the kernel for ``SIGTERM`` when its parent dies.

Limits: Linux only (abstract sockets, ``PR_SET_PDEATHSIG``); elsewhere nothing starts and
every web process writes for itself. The supervisor is meant to run in the web workers
(gunicorn without ``--preload``, as ``sharewise web`` runs it). Items travel as JSON, so they
must be JSON values (an item that is not is written by its own process). Messages are at
most 16 MB. They are encoded and decoded by orjson (about 25 us less an intake than the
standard library); the format is the JSON it was, so the wire version did not change.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import hashlib
import itertools
import logging
import math
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sharewise.plugin.groupcommit import GroupCommitter, item_conflict

log = logging.getLogger(__name__)

SUPPORTED = sys.platform.startswith("linux")
MAX_MESSAGE = 16 * 1024 * 1024
_HEADER = struct.Struct("!I")
#: orjson would write dates and dataclasses; as with the standard library, they are refused
#: (an item holding one is written by its own process)
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_PEERCRED = struct.Struct("iII")  # pid, uid, gid (struct ucred)
#: How long a sender waits beyond its deadline for a taken item's transaction to end.
GRACE = 10.0
#: How long a sender waits to connect and to hand over its message.
CONNECT_TIMEOUT = 5.0


def address_for(database_file: str, version: str = "") -> str:
    """The writer's socket address for a database file and a wire format ``version``
    (abstract namespace, ``\\0`` first). Web processes of another version (during a rolling
    restart) find no writer there and write for themselves until a writer of theirs runs."""
    key = f"{os.path.realpath(database_file)}\0{version}".encode()
    return f"\0sharewise-writer-{hashlib.sha256(key).hexdigest()[:32]}"


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket."""
    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return _PEERCRED.unpack(cred)[1]


def _frame(message: Any) -> bytes:
    data = orjson.dumps(message, option=_STRICT)
    if len(data) > MAX_MESSAGE:
        raise ValueError("message too large")
    return _HEADER.pack(len(data)) + data


class WriterUnavailable(RuntimeError):
    """The item was not written by a writer process (none runs, or it could not take it)."""


class WriterLost(RuntimeError):
    """The item was sent, and no answer came: the writer died or is stuck."""


class WriterConflict(RuntimeError):
    """The item broke a unique constraint; nothing of it was kept."""


class WriterFailed(RuntimeError):
    """The writer's batch failed with a database error (its name is the message)."""


# ------------------------------------------------------------------------------ client


class WriterClient:
    """Sends items to the writer process at ``address``; one connection per thread."""

    def __init__(self, address: str, retry_after: float = 1.0) -> None:
        self.address = address
        self.retry_after = retry_after
        self._reset()
        _CLIENTS.add(self)

    def _reset(self) -> None:
        self._local = threading.local()
        self._down_until = 0.0  # after a refused connection: don't try again until then
        self._seq = itertools.count(1)  # next() is atomic: one sequence for every thread

    def _connect(self) -> socket.socket:
        if time.monotonic() < self._down_until:  # a thread found it gone or stuck: every
            self._drop()                         # thread writes for itself for a moment
            raise WriterUnavailable("no writer process")
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is not None:
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(self.address)
            # an abstract address has no permissions: anyone may bind it first, so only a
            # writer run by this user gets the rows (they carry personal data)
            if peer_uid(sock) != os.getuid():
                log.warning("writer address held by another user's process; not used")
                raise ConnectionRefusedError("writer run by another user")
            # from here on the kernel keeps the time limits: a blocking socket, so each send
            # and receive is one system call (Python's own timeouts poll before each)
            sock.settimeout(None)
            _kernel_timeout(sock, socket.SO_SNDTIMEO, CONNECT_TIMEOUT)
        except OSError:
            sock.close()
            self.mark_down()
            raise WriterUnavailable("no writer process") from None
        self._local.sock = sock
        return sock

    def mark_down(self) -> None:
        """Don't try the writer again for ``retry_after`` seconds (from any thread)."""
        self._down_until = time.monotonic() + self.retry_after

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def submit(self, item: Any, timeout: float) -> Any:
        """Have the writer write ``item``; its result once committed.

        Raises :class:`WriterConflict`, :class:`TimeoutError` (not taken within ``timeout``:
        nothing kept), :class:`WriterFailed`, :class:`WriterUnavailable` or
        :class:`WriterLost` (see the module doc).
        """
        try:
            seq = next(self._seq)
            deadline = time.monotonic() + timeout
            frame = _frame(["w", seq, deadline, item])
        except (TypeError, ValueError) as exc:  # not JSON: written by its own process
            raise WriterUnavailable(f"item not sendable ({type(exc).__name__})") from None
        sock = self._connect()
        try:
            sock.sendall(frame)
        except OSError:
            # a writer that went away since the last item, or one that does not read: it
            # has no whole message (a broken stream takes no partial one); a new connection
            self._drop()
            sock = self._connect()
            try:
                sock.sendall(frame)
            except OSError:
                self._drop()
                self.mark_down()
                raise WriterUnavailable("the writer process went away") from None
        try:
            _kernel_timeout(sock, socket.SO_RCVTIMEO,
                            max(0.0, deadline - time.monotonic()) + GRACE)
            reply = self._read(sock)
        except (OSError, ValueError):
            self._drop()
            self.mark_down()  # the others write for themselves, not wait for it too
            raise WriterLost("no answer from the writer process") from None
        if reply[0] != seq:
            self._drop()
            raise WriterLost("answer out of order")
        kind = reply[1]
        if kind == "ok":
            return reply[2]
        if kind == "conflict":
            raise WriterConflict("unique constraint")
        if kind == "timeout":
            raise TimeoutError
        if kind == "local":
            self._drop()
            raise WriterUnavailable("the writer process is stopping")
        raise WriterFailed(str(reply[2]) if len(reply) > 2 else "error")

    @staticmethod
    def _read(sock: socket.socket) -> Any:
        """One answer (usually one ``recv``: answers are small and come whole)."""
        data = b""
        size = None
        while size is None or len(data) < _HEADER.size + size:
            chunk = sock.recv(65536 if size is None else _HEADER.size + size - len(data))
            if not chunk:
                raise ConnectionResetError("closed")
            data += chunk
            if size is None and len(data) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(data)
                if size > MAX_MESSAGE:
                    raise ValueError("message too large")
        if len(data) != _HEADER.size + size:
            raise ValueError("more than one answer")  # never sent: one answer per message
        return orjson.loads(data[_HEADER.size:])


def _kernel_timeout(sock: socket.socket, option: int, seconds: float) -> None:
    """``SO_RCVTIMEO`` / ``SO_SNDTIMEO``: a blocking call on ``sock`` fails with
    ``BlockingIOError`` after ``seconds``."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, option,
                    struct.pack("ll", whole, int((seconds - whole) * 1_000_000)))


_CLIENTS: weakref.WeakSet[WriterClient] = weakref.WeakSet()


def _reset_clients_after_fork() -> None:
    for client in list(_CLIENTS):
        client._reset()  # the parent's connections are not this process's


os.register_at_fork(after_in_child=_reset_clients_after_fork)


# ------------------------------------------------------------------------------ server


@dataclass
class _Entry:
    conn: _Conn
    seq: int
    deadline: float
    item: Any


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.closed = False


class WriterServer:
    """The writer's loop (see the module doc). ``decode`` turns a received JSON value into
    the item ``committer.write`` takes; results must be JSON values."""

    def __init__(self, committer: GroupCommitter[Any, Any], address: str,
                 decode: Callable[[Any], Any], max_batch: int = 64) -> None:
        self.committer = committer
        self.decode = decode
        self.max_batch = max_batch
        self.stopping = False
        self._pending: collections.deque[_Entry] = collections.deque()
        self._sel = selectors.DefaultSelector()
        self._listener = socket.socket(socket.AF_UNIX,
                                       socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._listener.bind(address)  # OSError (EADDRINUSE): another writer serves it
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._uid = os.getuid()

    def close(self) -> None:
        """Answer what is pending ``local`` (the senders write it themselves) and close."""
        while self._pending:
            entry = self._pending.popleft()
            self._reply(entry.conn, [entry.seq, "local"])
        for key in list(self._sel.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._sel.close()

    def serve(self) -> None:
        """Serve until :attr:`stopping` is set (by a signal handler or another thread)."""
        while not self.stopping:
            self._poll(0 if self._pending else 0.5)
            if self._pending and not self.stopping:
                self._write()

    def _poll(self, timeout: float) -> int:
        """Accept and read what is ready (waiting up to ``timeout``); how much was."""
        events = self._sel.select(timeout)
        for key, _ in events:
            if key.fileobj is self._listener:
                self._accept()
            else:
                self._receive(key.data)
        return len(events)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if peer_uid(sock) != self._uid:
                log.warning("writer: refused a connection from another user")
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock)
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        if not conn.closed:
            conn.closed = True
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)
            conn.sock.close()

    def _receive(self, conn: _Conn) -> None:
        try:
            # recv allocates what it is asked for: 1 MB cost 11 us more a call than 64 KB
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)  # its pending items are skipped (take): the sender gave up
            return
        buf = conn.buffer
        buf += data
        while len(buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf)
            if size > MAX_MESSAGE:
                log.warning("writer: a message over the limit; connection closed")
                self._close(conn)
                return
            if len(buf) < _HEADER.size + size:
                break
            raw = bytes(buf[_HEADER.size:_HEADER.size + size])
            del buf[:_HEADER.size + size]
            try:
                entry = self._parse(conn, raw)
            except Exception:  # noqa: BLE001 - whatever a sender got wrong, the writer goes on
                log.warning("writer: a malformed message; connection closed")
                self._close(conn)
                return
            self._pending.append(entry)

    def _parse(self, conn: _Conn, raw: bytes) -> _Entry:
        message = orjson.loads(raw)
        if not (isinstance(message, list) and len(message) == 4 and message[0] == "w"):
            raise ValueError("not a write message")
        _, seq, deadline, value = message
        if not (isinstance(seq, int) and isinstance(deadline, float)
                and math.isfinite(deadline)):
            raise ValueError("bad sequence number or deadline")
        return _Entry(conn, seq, deadline, self.decode(value))

    def _reply(self, conn: _Conn, message: list[Any]) -> None:
        if conn.closed:
            return
        data = _frame(message)
        try:
            try:
                sent = conn.sock.send(data)  # answers are small: almost always sent whole
            except BlockingIOError:
                sent = 0
            if sent < len(data):  # a slow reader: wait a little for it, not forever
                conn.sock.settimeout(5)
                conn.sock.sendall(data[sent:])
                conn.sock.setblocking(False)
        except OSError:
            self._close(conn)

    def _write(self) -> None:
        taken: list[_Entry] = []

        def take() -> list[Any]:
            # what arrived while waiting for the write lock joins the batch (new
            # connections are read on the next round)
            for _ in range(4):
                if not self._poll(0):
                    break
            now = time.monotonic()
            while self._pending and len(taken) < self.max_batch:
                entry = self._pending.popleft()
                if entry.conn.closed:  # its sender gave up and writes it itself
                    continue
                if entry.deadline < now:
                    self._reply(entry.conn, [entry.seq, "timeout"])
                else:
                    taken.append(entry)
            return [entry.item for entry in taken]

        try:
            outcomes: Sequence[Any] = self.committer.run_batch(take)
        except Exception as exc:  # noqa: BLE001 - every sender is answered
            if not taken:  # failed before taking (BEGIN: the database is unreachable):
                taken = list(self._pending)  # nothing pending was written; the senders
                self._pending.clear()        # write for themselves at once
            log.warning("writer: a batch of %d failed (%s)", len(taken), type(exc).__name__)
            for entry in taken:
                self._reply(entry.conn, [entry.seq, "error", type(exc).__name__])
            return
        for entry, outcome in zip(taken, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                self._reply(entry.conn, [entry.seq, "ok", outcome])
            elif item_conflict(outcome):
                self._reply(entry.conn, [entry.seq, "conflict"])
            else:  # pragma: no cover - run_batch returns only conflicts as outcomes
                self._reply(entry.conn, [entry.seq, "error", type(outcome).__name__])


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies; exit now if it already has."""
    if SUPPORTED:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def run_server(server: WriterServer) -> None:
    """Serve until SIGTERM or SIGINT; then answer what is pending and close."""

    def _stop(_signum: int, _frame: Any) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve()
    finally:
        server.close()


# --------------------------------------------------------------------------- supervisor


class WriterSupervisor(threading.Thread):
    """Runs the writer process from whichever web process holds ``lock_path`` (see the
    module doc). ``argv`` starts the writer; it gets ``SHAREWISE_WRITER_PARENT``, this
    process's id, so it can exit with it."""

    def __init__(self, lock_path: str, argv: list[str], env: dict[str, str] | None = None,
                 poll: float = 1.0, backoff: float = 1.0) -> None:
        super().__init__(name="sharewise-writer-supervisor", daemon=True)
        self.lock_path = lock_path
        self.argv = argv
        self.env = env
        self.poll = poll
        self.backoff = backoff
        self.stop_event = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def run(self) -> None:
        """Wait for the lock, then keep a writer running until stopped."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("writer supervisor: no lock file (%s); not started",
                        type(exc).__name__)
            return
        try:
            while not self.stop_event.is_set():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.stop_event.wait(self.poll)  # another process supervises
                    continue
                self._keep_running()
        finally:
            os.close(fd)  # releases the lock

    def _keep_running(self) -> None:
        env = dict(self.env if self.env is not None else os.environ)
        env["SHAREWISE_WRITER_PARENT"] = str(os.getpid())
        backoff = self.backoff
        while not self.stop_event.is_set():
            started = time.monotonic()
            self.starts += 1
            try:
                self.process = subprocess.Popen(self.argv, env=env)  # noqa: S603 - our argv
            except OSError as exc:  # cannot start now (no memory, too many processes...)
                self.process = None
                code: int | str = type(exc).__name__
            else:
                while self.process.poll() is None:
                    if self.stop_event.wait(0.2):
                        self._stop_process()
                        return
                code = self.process.returncode
            if time.monotonic() - started > 10:
                backoff = self.backoff  # it ran for a while: start it again soon
            log.warning("writer process ended (%s); starting it again in %.1f s", code,
                        backoff)
            self.stop_event.wait(backoff)
            # one that keeps failing at start is tried less and less often (at most every
            # minute); the web processes write for themselves meanwhile
            backoff = min(backoff * 2, 60.0)

    def _stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        """Stop the writer (if this process runs it) and the thread."""
        self.stop_event.set()
        self.join(15)
