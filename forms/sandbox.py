"""Read an untrusted upload: :func:`read_upload`, whose parse runs in a worker process under a
time and memory bound.

A PDF can be built to make a parser spin (a cross-reference that points at itself, object
trees that never end) or to expand a few kilobytes into gigabytes (a decompression bomb).
The upload path therefore never parses in the web process. :func:`read_upload` makes the
cheap checks of :func:`sharewise.forms.reader.precheck` (empty, too large, not starting with
``%PDF-``) here, then hands the bytes to one of a small pool of worker processes, which run
:func:`sharewise.forms.reader.read_pdf`, and waits with a timeout. The dependency is one way:
this module imports :mod:`sharewise.forms.reader`, never the reverse.

Bounds (defaults; see :class:`ReaderPool`):

- **time**: the caller waits ``timeout`` seconds (5 s by default, see :func:`read_upload`);
  then the worker is killed (``SIGKILL``) and replaced, and the upload is refused with
  ``UploadRejected("too_complex")``.
- **memory**: each worker runs under ``RLIMIT_AS`` = 286 MiB (just under 300 MB) of address
  space. Resident memory can never exceed the address space, so no upload, of any size or
  shape, takes a worker above 300 MB resident. A warm worker maps about 60 MB and reading the
  filled form adds a few MB; a 12 MB upload of the form with ordinary content (fonts, images)
  needs a few tens of MB. An allocation beyond the limit raises ``MemoryError`` in the worker:
  the upload is refused as ``too_complex`` and the worker is replaced; a worker that dies any
  other way is also replaced and the upload refused as ``too_complex``. (A hostile 12 MB
  upload whose one field holds 12 MB of text needs about 320 MB in pypdf and is refused this
  way.)
- **parser limits**: inside the worker pypdf runs with :data:`forms.reader.PYPDF_LIMITS` (a
  Flate stream stops at 32 MB of output) and the reader's own walks are bounded and loop-safe.
- **no core files** (``RLIMIT_CORE`` = 0); a worker is retired after ``max_tasks`` parses.

Workers are separate interpreters (``-m sharewise.forms.sandbox``, started with ``subprocess``
and talking over a socket pair with :class:`multiprocessing.connection.Connection`), so they
inherit nothing from the web process (threads, sockets, database connections, the main
module, and of its environment only ``PATH``, locale, ``TZ``, ``TMPDIR`` and ``HOME``: no
settings, secrets or service URLs). Requests go to a worker pickled; replies come back as
JSON, checked for shape and type, and a refusal keeps only a known code and one of the
reader's own messages, so nothing a worker that parsed a hostile file sends can run code or
put text of its choosing in a response.

Each worker loads the spec and reads the blank template once at start (through
:func:`sharewise.forms.reader.read_pdf`, which refuses it as ``wrong_form``), so the modules a
parse needs are imported before the first upload; what that leaves is then frozen out of
garbage collection, and a worker collects the garbage of a parse after sending its reply rather
than during the parse (:data:`GC_THRESHOLD`). Calls are thread-safe; a call waits for a
free worker, and as every call ends within its timeout the wait is bounded too.

The pool is created on first use (per process: a forked child gets its own); :func:`warm`
starts it early and :func:`shutdown` stops it (also registered with ``atexit``). Closing the
pool wakes every caller still waiting for a worker with ``RuntimeError`` (never a wait for
ever); a busy worker is stopped when its call returns. Every worker process is waited for
when it is stopped (no zombies) and its socket closed. A worker also ends by itself when the
service process goes away: an idle one sees its socket reach end of file, a busy one
notices within half a second that its parent has gone (a timer signal) and exits. A worker
that stops on an unexpected error writes one line naming the error's type to stderr, never a
traceback.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sharewise.forms import reader
from sharewise.forms.reader import DEFAULT_MAX_BYTES, ReadBack, UploadRejected
from sharewise.forms.spec import SPEC_PATHS, TenantOptions, load_spec
from sharewise.forms.templatefile import template_path
from sharewise.forms.validate import Problem

__all__ = ["ReaderPool", "get_pool", "read", "read_upload", "shutdown", "warm"]

DEFAULT_WORKERS = 2
#: A reader process that has had no upload for this long stops (seconds); the next upload
#: starts one again (about a third of a second). An idle service then keeps none.
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MEMORY_LIMIT = 286 * 1024 * 1024  # 299.9 MB: under the 300 MB resident target
DEFAULT_MAX_TASKS = 500
STARTUP_TIMEOUT = 30.0
PARENT_CHECK_SECONDS = 0.5
MAX_REPLY_BYTES = 64 * 1024 * 1024  # a reply carries at most the text of a 12 MB upload
#: A worker's first-generation garbage collection threshold (Python's default is 700). Reading
#: the form builds a few thousand container objects that stay alive for the whole parse, so
#: at 700 the collector runs several times per upload, mostly over objects still in use (about
#: a tenth of the parse time). The worker collects after each reply instead (off the caller's
#: wait); this threshold keeps automatic collection as the safety net for a parse that makes
#: far more objects than the form needs (a few MB of garbage at most, against the 286 MiB bound).
GC_THRESHOLD = 100_000
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_WORKER_ENVIRONMENT = frozenset({"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOME"})


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _warm_up() -> None:
    """Load the spec and read the blank template once, so that the modules and caches a parse
    needs are ready before the first upload (the template is refused as ``wrong_form``)."""
    for version in SPEC_PATHS:
        load_spec(version)
        try:
            reader.read_pdf(template_path(version).read_bytes(), "warm-up", {}, version)
        except UploadRejected:
            pass


def _tune_gc() -> None:
    """Set the worker's garbage collector up for one parse at a time (see :data:`GC_THRESHOLD`).

    What the warm-up left (modules, the spec) is frozen: never garbage, so no collection
    needs to look at it again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def _peak_rss() -> int:
    """This process's peak resident size in bytes since it started its own program.

    ``VmHWM`` belongs to the address space, so it starts afresh at ``exec`` (``ru_maxrss``
    would still count the process that spawned the worker).
    """
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _send(conn: Connection, *parts: Any) -> None:
    """Send a reply as JSON: the service never unpickles what a worker that parsed an
    untrusted file sends back."""
    conn.send_bytes(json.dumps(parts, ensure_ascii=False).encode("utf-8"))


def _receive(conn: Connection) -> list[Any]:
    """A worker's JSON reply (``ValueError`` / ``OSError`` / ``EOFError`` if it is not one)."""
    reply = json.loads(conn.recv_bytes(MAX_REPLY_BYTES))
    if not isinstance(reply, list) or not reply or not isinstance(reply[0], str):
        raise ValueError("not a worker reply")
    return reply


def _result(readback: ReadBack) -> dict[str, Any]:
    return {
        "values": readback.values,
        "record_id": readback.record_id,
        "prefill_hash": readback.prefill_hash,
        "problems": [[p.field, p.rule, p.message] for p in readback.problems],
    }


def _readback(result: Any) -> ReadBack:
    """A :class:`ReadBack` from a worker's JSON result, checked for shape and types."""
    values = result["values"]
    if not isinstance(values, dict) or not all(
        isinstance(v, str | bool) or v is None for v in values.values()
    ):
        raise ValueError("values")
    for key in ("record_id", "prefill_hash"):
        if not (result[key] is None or isinstance(result[key], str)):
            raise ValueError(key)
    problems = tuple(Problem(str(f), int(r), str(m)) for f, r, m in result["problems"])
    return ReadBack(values=values, record_id=result["record_id"],
                    prefill_hash=result["prefill_hash"], problems=problems)


def _exit_with_parent(parent: int, interval: float = PARENT_CHECK_SECONDS) -> None:
    """End this worker when ``parent``, the process that started it, has gone, even in the
    middle of a parse (an idle worker also sees end of file on its socket; a busy one would
    otherwise run on, orphaned, until its parse ended). A timer signal, not a thread: a
    thread's stack would count against the worker's address-space bound."""

    def check(_signum: int, _frame: Any) -> None:
        if os.getppid() != parent:
            os._exit(1)

    signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, interval, interval)


def worker_main(
    conn: Connection, memory_limit: int, max_tasks: int, parent: int | None = None
) -> None:
    """The worker loop: one request in, one reply out, until told to stop or retired.

    ``parent`` is the pid of the process that started the worker (default: the current
    parent); the worker exits when that process has gone.
    """
    _exit_with_parent(parent if parent is not None else os.getppid())
    # pypdf's recovery warnings describe the upload's structure only; keep them out of the
    # service's stderr (the reader still sees them through its own handler).
    logging.getLogger("pypdf").propagate = False
    _limit_memory(memory_limit)
    _warm_up()
    _tune_gc()
    _send(conn, "ready", os.getpid())
    for _ in range(max_tasks):
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        kind = request[0]
        if kind == "stats":
            _send(conn, "stats", _peak_rss())
            continue
        _, data, record_id, shown, version, options = request
        try:
            readback = reader.read_pdf(data, record_id, shown, version, options)
            _send(conn, "ok", _result(readback))
        except UploadRejected as rejected:
            _send(conn, "rejected", rejected.code, rejected.message)
        except MemoryError:
            del data, request
            _send(conn, "rejected", "too_complex", None)
            return
        del data, request
        gc.collect()  # the parse's objects, after the caller has its reply
    _send(conn, "retired", None)


class _Worker:
    """One reader process: ``python -m sharewise.forms.sandbox FD`` speaking over a socket pair."""

    def __init__(self, memory_limit: int, max_tasks: int) -> None:
        ours, theirs = socket.socketpair()
        # only what an interpreter needs: no service settings, secrets or URLs reach a worker
        env = {k: v for k, v in os.environ.items() if k in _WORKER_ENVIRONMENT}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH", "")) if p
        )
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sharewise.forms.sandbox", str(theirs.fileno()),
                 str(memory_limit), str(max_tasks), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=_PROJECT_ROOT,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.ready = False
        self.tasks = 0
        self.max_tasks = max_tasks
        self.last_used = 0.0

    def wait_ready(self, timeout: float) -> bool:
        if self.ready:
            return True
        try:
            if self.conn.poll(timeout):
                self.ready = _receive(self.conn)[0] == "ready"
        except (EOFError, OSError, ValueError):
            return False
        return self.ready

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ask the worker to end (it is idle), then make sure it has."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()


class ReaderPool:
    """Up to ``workers`` warm, resource-limited reader processes.

    Workers are started when uploads need them (``workers`` of them at once at most; the first
    ``prestart`` right away) and retire after ``idle_timeout`` seconds without an upload, so an
    idle service keeps no reader process. A background thread of the pool retires them.
    """

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        max_tasks: int = DEFAULT_MAX_TASKS,
        idle_timeout: float | None = None,
        prestart: int | None = None,
    ) -> None:
        self._size = max(1, workers)
        self._memory_limit = memory_limit
        self._max_tasks = max_tasks
        self._idle_timeout = idle_timeout
        self._idle: list[_Worker] = []  # the most recently used last
        self._live = 0  # idle and busy workers, and those being started
        self._cond = threading.Condition()
        self._closed = False
        self.pid = os.getpid()
        for _ in range(self._size if prestart is None else min(prestart, self._size)):
            self._live += 1
            self._idle.append(self._spawn())
        if idle_timeout is not None:
            threading.Thread(target=self._retire_idle, name="sharewise-reader-retire",
                             daemon=True).start()

    def _spawn(self) -> _Worker:
        worker = _Worker(self._memory_limit, self._max_tasks)
        worker.last_used = time.monotonic()
        return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        keep = healthy and worker.tasks < worker.max_tasks
        if not keep:
            worker.kill()
        with self._cond:
            if keep and not self._closed:
                worker.last_used = time.monotonic()
                self._idle.append(worker)
            else:
                self._live -= 1
            self._cond.notify()
        if keep and self._closed:
            worker.kill()

    def _take(self) -> _Worker:
        """A free worker, started if none is and the pool has room; waits otherwise.
        Raises ``RuntimeError`` once the pool is closed."""
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the reader pool is shut down")
                if self._idle:
                    return self._idle.pop()
                if self._live < self._size:
                    self._live += 1
                    break
                self._cond.wait()
        try:
            return self._spawn()
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def _retire_idle(self) -> None:
        """Stop workers idle for ``idle_timeout`` seconds (the pool's background thread)."""
        assert self._idle_timeout is not None  # noqa: S101 - started only with a timeout
        tick = max(0.05, min(5.0, self._idle_timeout / 4))
        while True:
            time.sleep(tick)
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                old = [w for w in self._idle if now - w.last_used >= self._idle_timeout]
                self._idle = [w for w in self._idle if w not in old]
                self._live -= len(old)
            for worker in old:
                worker.stop()

    def call(self, request: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        """Send one request to a free worker and return its reply (or raise on a bound)."""
        worker = self._take()
        healthy = False
        try:
            if not worker.wait_ready(STARTUP_TIMEOUT):
                # a worker that never came up: replace it and try once more
                worker.kill()
                worker = self._spawn()
                if not worker.wait_ready(STARTUP_TIMEOUT):
                    raise RuntimeError("a PDF reader worker did not start")
            try:
                worker.conn.send(request)
            except OSError:
                # the worker died while idle (not this upload's doing): use a fresh one
                worker.kill()
                worker = self._spawn()
                if not worker.wait_ready(STARTUP_TIMEOUT):
                    raise RuntimeError("a PDF reader worker did not start") from None
                try:
                    worker.conn.send(request)
                except OSError:  # it died taking this request in (its memory bound)
                    raise UploadRejected("too_complex") from None
            worker.tasks += 1
            if not worker.conn.poll(timeout):
                raise UploadRejected("too_complex")
            try:
                reply = _receive(worker.conn)
            except (EOFError, OSError, ValueError):
                raise UploadRejected("too_complex") from None
            healthy = reply[0] in ("ok", "rejected", "stats") and worker.alive()
            if reply[0] == "rejected" and reply[1:2] == ["too_complex"]:
                healthy = False  # after a MemoryError the worker is not trusted again
            return tuple(reply)
        finally:
            self._release(worker, healthy)

    def read(
        self, data: bytes, record_id: str, shown: Mapping[str, str], timeout: float,
        version: int = 1, tenant_options: TenantOptions = (),
    ) -> ReadBack:
        """Parse one upload in a worker (see :func:`sharewise.forms.reader.read_pdf`)."""
        request = ("read", data, record_id, dict(shown), version, tenant_options)
        reply = self.call(request, timeout)
        if reply[0] == "ok" and len(reply) == 2:
            try:
                return _readback(reply[1])
            except (KeyError, TypeError, ValueError):
                raise UploadRejected("too_complex") from None
        if reply[0] == "rejected" and len(reply) == 3:
            raise UploadRejected.checked(reply[1], reply[2])
        raise UploadRejected("too_complex")

    def peak_rss(self, timeout: float = 5.0) -> int:
        """The peak resident size in bytes of one worker (the next free one)."""
        reply = self.call(("stats",), timeout)
        return int(reply[1])

    def worker_pids(self) -> list[int]:
        """The process ids of the idle workers (for tests and diagnostics)."""
        with self._cond:
            return [w.process.pid for w in self._idle]

    def idle_count(self) -> int:
        """How many workers wait for an upload."""
        with self._cond:
            return len(self._idle)

    def close(self) -> None:
        """Stop every idle worker; busy ones are stopped when their call returns.

        Callers waiting for a worker, and any later call, get ``RuntimeError``.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.stop()


_pool: ReaderPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> ReaderPool:
    """The process's reader pool, created on first use (and again in a forked child)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            workers = int(os.environ.get("SHAREWISE_READER_WORKERS", DEFAULT_WORKERS))
            idle = float(os.environ.get("SHAREWISE_READER_IDLE_SECONDS", DEFAULT_IDLE_TIMEOUT))
            _pool = ReaderPool(max(1, workers), idle_timeout=max(1.0, idle), prestart=0)
        return _pool


def read(data: bytes, record_id: str, shown: Mapping[str, str], *, timeout: float,
         version: int = 1, tenant_options: TenantOptions = ()) -> ReadBack:
    """Parse an upload in the process's pool (``shown``: :func:`reader.expected_display`)."""
    return get_pool().read(data, record_id, shown, timeout, version, tenant_options)


def read_upload(
    data: bytes,
    *,
    record_id: str,
    expected: Mapping[str, Any],
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 5.0,
    isolate: bool = True,
    version: int = 1,
    tenant_options: TenantOptions = (),
) -> ReadBack:
    """Read an uploaded decision form for ``record_id`` (of schema ``version``) or raise
    :class:`UploadRejected`.

    ``expected`` is the record's normalised prefilled values (read-only fields are compared
    with them). :func:`sharewise.forms.reader.precheck` runs first, in this process, before
    any parsing. With ``isolate=True`` (the default) the parse runs in a sandbox worker bounded
    by ``timeout`` seconds and a memory limit; ``isolate=False`` parses in this process
    (benchmarks, or a caller that is already sandboxed) and cannot enforce ``timeout``.
    """
    reader.precheck(data, max_bytes)
    shown = reader.expected_display(record_id, expected, load_spec(version))
    if isolate:
        return read(data, record_id, shown, timeout=timeout, version=version,
                    tenant_options=tenant_options)
    return reader.read_pdf(data, record_id, shown, version, tenant_options)


def warm() -> None:
    """Start the pool now (for example when the web service starts)."""
    get_pool()


def shutdown() -> None:
    """Stop the pool's workers (registered with ``atexit``)."""
    global _pool
    with _pool_lock:
        if _pool is not None and _pool.pid == os.getpid():
            _pool.close()
        _pool = None


atexit.register(shutdown)


def _run_worker(argv: list[str]) -> int:
    """Run :func:`worker_main`; an unexpected end is one line on stderr, never a traceback
    (the service's log must not carry anything derived from an upload)."""
    conn = Connection(int(argv[1]))
    try:
        worker_main(conn, int(argv[2]), int(argv[3]), int(argv[4]) if len(argv) > 4 else None)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: stop quietly
        return 1
    except BaseException as exc:  # noqa: BLE001 - reported by type only
        print(f"sharewise reader worker {os.getpid()} stopped: {type(exc).__name__}",
              file=sys.stderr)
        return 1
    finally:
        try:
            conn.close()
        except OSError:
            pass
    return 0


if __name__ == "__main__":  # the worker: -m sharewise.forms.sandbox FD LIMIT TASKS [PARENT_PID]
    sys.exit(_run_worker(sys.argv))
