"""Footprint of ``sharewise serve``: memory at rest, memory, processes and file descriptors
after use, and a backlog of webhooks, each beside a baseline measured in the same run.

Run: ``.venv/bin/python -m bench.footprint`` from the checkout (defaults ``--records 1000
--events 10000 --clients 4 --connections 20 --client-procs 2 --client http.client``; about
ten minutes on a shared two-core machine; shorter while developing: ``--records 50 --events
500``).

Everything runs on the embedded default in a fresh temporary directory (SQLite, the embedded
broker, the local file store) with one tenant whose ``callback_url`` points at a host simulator
(:class:`sharewise.plugin.outbox.hostsim.HostSimulator`) running in this process.

**What is measured.** The process tree of ``sharewise serve`` (the installed ``sharewise``
script next to ``sys.executable``): serve itself and all its descendants, found anew at every
sample by walking ``/proc`` (parent ids), plus any process that carries this run's marker in
its environment (``FOOTPRINT_TREE``; catches a child that was re-parented, e.g. a daemonised
broker). Nothing about serve's process model is assumed. Memory is PSS (proportional set size:
each shared page divided among the processes that map it) summed from
``/proc/<pid>/smaps_rollup``; RSS is printed too (it counts shared pages once per process, so
its sum overstates). "Settled" means three samples one second apart with the same processes and
PSS within 1 %, after at least ``--settle`` seconds.

1. **At rest** (goal: at most 300 MB PSS). serve is started, ONE record goes through the whole
   journey (signed ``share.requested`` -> GET ``form_pdf_url`` -> a COMPLETE form POSTed to
   ``upload_url`` -> the host simulator receives ``share.record_completed``), then the tree
   settles and is measured. Baseline, measured before serve starts: a bare Flask "hello" app
   under the gunicorn argv serve uses for web (``plugin/cli.py`` ``_web_argv``: same workers,
   threads, worker class, flags) plus a bare Celery worker with the argv serve uses
   (``_worker_argv``: same pool and concurrency) on the same kind of broker (the embedded one,
   in its own directory), summed the same way.
2. **Under use** (goals: PSS at most +10 % over at rest; processes and open file descriptors
   back where they started). ``--records`` more records each go through the journey with a
   PARTIAL upload (answer ``incomplete``) and then a COMPLETE one (answer ``complete``), from
   ``--clients`` concurrent clients; then every post-back must reach the host. Forms are filled
   as ``tests/plugin/uploads/journey.py`` does: :func:`sharewise.forms.prefill.fill` on the
   record's stored prefill values (read from the SQLite database) plus its answers. After the
   tree settles: PSS, process count and the open descriptors (``/proc/<pid>/fd``) of the tree,
   before vs after; the peak seen while it worked is printed for information.
3. **Backlog** (goal: above 150 events/s). ``--events`` signed ``share.requested`` events, all
   with distinct request ids, at ``--connections`` concurrent keep-alive connections
   (``--client-procs`` processes of threads, so the client is not the bottleneck). The client is
   ``http.client`` by default: ``httpx`` (``--client httpx``) takes about three times the CPU
   per request, which on two cores caps the bare endpoint near 250 events/s (the client, not
   the server, is then measured) and takes CPU from the server under test. Every answer
   must be 201 (no 5xx, no transport error) and the database must hold exactly one record per
   request id. Baseline: the same client, same signed bodies, to the bare app's
   ``POST /webhooks/<tenant>`` (reads the body, answers 201) under the same gunicorn argv, run
   once before and once after serve's backlog (the mean is the baseline).

Prints each figure beside its baseline and a final table (figure, baseline, goal, met?);
writes ``bench/results/footprint.json`` (not committed). Every process started is stopped at
the end (SIGTERM, then SIGKILL to the process groups seen in its tree), also on errors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

# The standard library modules imported at the top are the light ones: the bare apps'
# processes import this module too (argparse, multiprocessing, sqlite3 and subprocess would add
# a few MB to each; they are imported where they are used).

REPO = Path(__file__).resolve().parent.parent
MARKER_ENV = "FOOTPRINT_TREE"
BARE_BROKER_ENV = "FOOTPRINT_BARE_BROKER"
SHAREWISE_APP = "sharewise.plugin.wsgi:app"
BARE_APP = "bench.footprint:bare_app"
BARE_CELERY = "bench.footprint:bare_celery"
TENANT = "footprint"
MB = 1024  # kB per MB (MiB, as smaps reports kB = KiB)

GOAL_REST_MB = 300
GOAL_GROWTH = 0.10
GOAL_EVENTS_PER_S = 150


# --------------------------------------------------------------------------- bare baselines


def _make_bare_app() -> Any:
    from flask import Flask, jsonify, request

    app = Flask("bare")

    @app.get("/")
    def hello() -> Any:
        return "hello\n"

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.post("/webhooks/<tenant>")
    def webhook(tenant: str) -> Any:
        body = request.get_data()
        return jsonify({"received": len(body), "tenant": tenant}), 201

    return app


def _make_bare_celery() -> Any:
    from celery import Celery

    app = Celery("bare")
    conf = json.loads(os.environ.get(BARE_BROKER_ENV) or "{}")
    app.conf.update(
        task_ignore_result=True, result_backend=None, task_serializer="json",
        accept_content=["json"], broker_connection_retry_on_startup=True, **conf,
    )

    @app.task(name="bare.noop")
    def noop() -> None:
        return None

    return app


def __getattr__(name: str) -> Any:
    """``bare_app`` (gunicorn) and ``bare_celery`` (celery -A), made on first use so that each
    baseline process imports only what it serves (this module imports the standard library
    only)."""
    makers = {"bare_app": _make_bare_app, "bare_celery": _make_bare_celery}
    if name not in makers:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = makers[name]()
    globals()[name] = value
    return value


# --------------------------------------------------------------------------- /proc helpers


def parse_rollup(text: str) -> dict[str, int]:
    """The ``Key:  N kB`` lines of ``/proc/<pid>/smaps_rollup`` as ``{key: kB}`` (the header
    line, an address range, is skipped)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def parse_stat(text: str) -> tuple[int, int]:
    """``(ppid, pgid)`` from the text of ``/proc/<pid>/stat`` (the command name, in
    parentheses, may itself contain spaces and parentheses)."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def process_table(proc: Path = Path("/proc")) -> dict[int, tuple[int, int]]:
    """Every process now: ``{pid: (ppid, pgid)}``."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            table[int(entry)] = parse_stat((proc / entry / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return table


def descendants(root: int, parents: Mapping[int, int]) -> list[int]:
    """``root`` and every process below it (breadth first, children by pid), from a
    ``{pid: ppid}`` map. Empty if ``root`` is not in the map."""
    if root not in parents:
        return []
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        if pid != ppid:
            children.setdefault(ppid, []).append(pid)
    order, queue = [], [root]
    seen = set()
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        order.append(pid)
        queue.extend(sorted(children.get(pid, ())))
    return order


def has_marker(pid: int, marker: str, proc: Path = Path("/proc")) -> bool:
    """Whether process ``pid``'s environment holds ``FOOTPRINT_TREE=<marker>`` (False for a
    process we may not read)."""
    try:
        environ = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER_ENV}={marker}".encode() in environ.split(b"\0")


def tree_pids(root: int, marker: str | None = None, proc: Path = Path("/proc")
              ) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """The pids of ``root``'s tree: its descendants, plus (with ``marker``) every process
    carrying the marker and its descendants (a child re-parented out of the tree). Also
    returns the process table it was read from."""
    table = process_table(proc)
    parents = {pid: ppid for pid, (ppid, _pgid) in table.items()}
    found = descendants(root, parents)
    if marker:
        seen = set(found)
        for pid in sorted(table):
            if pid not in seen and has_marker(pid, marker, proc):
                for extra in descendants(pid, parents):
                    if extra not in seen:
                        seen.add(extra)
                        found.append(extra)
    return found, table


def cpu_ticks(stat_text: str) -> int:
    """utime + stime + cutime + cstime (clock ticks) from the text of ``/proc/<pid>/stat``:
    the process's CPU and that of its children it has waited for."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


def tree_cpu_seconds(root: int, marker: str | None = None) -> float:
    """CPU seconds used so far by the live processes of the tree and the children they reaped
    (a difference of two readings is the tree's CPU in between)."""
    total = 0
    for pid in tree_pids(root, marker)[0]:
        try:
            total += cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


#: Long options of gunicorn and celery that take no value (kept in a :func:`label`).
FLAGS = frozenset({"--preload", "--beat", "--daemon", "--reload", "--detach", "--quiet",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"})


def label(argv: list[str], width: int = 64) -> str:
    """A short name of a command line: the program or ``-m`` module, then its arguments
    without ``--option value`` pairs (the flags of :data:`FLAGS` kept), e.g. ``gunicorn
    --preload sharewise.plugin.wsgi:app`` or ``celery -A sharewise.tasks.worker worker``."""
    if not argv:
        return "?"
    prog, args = Path(argv[0]).name, argv[1:]
    if prog.startswith("python") and args:
        if args[0] == "-m" and len(args) > 1:
            prog, args = args[1], args[2:]
        elif not args[0].startswith("-"):
            prog, args = Path(args[0]).name, args[1:]
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("--") and arg not in FLAGS:
            skip = "=" not in arg
            continue
        kept.append("{...}" if arg.startswith(("{", "[")) and len(arg) > 24 else arg)
    text = " ".join([prog, *kept])
    return text if len(text) <= width else text[: width - 3] + "..."


def fd_kind(target: str) -> str:
    """What an open descriptor is, from its ``/proc/<pid>/fd`` link: ``socket``, ``pipe``, an
    anonymous inode's kind (``eventpoll``...), or a file's name (``sharewise.db-wal``)."""
    if target.startswith(("socket:", "pipe:")):
        return target.split(":", 1)[0]
    if target.startswith("anon_inode:"):
        return target.removeprefix("anon_inode:").strip("[]")
    if target.startswith("/"):
        return Path(target.removesuffix(" (deleted)")).name or target
    return target


@dataclass
class Proc:
    pid: int
    ppid: int
    pgid: int
    depth: int
    name: str
    pss_kb: int
    rss_kb: int
    fds: int
    fd_kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Snapshot:
    procs: list[Proc]
    at: float = field(default_factory=time.monotonic)
    settled: bool = True

    @property
    def pss_kb(self) -> int:
        return sum(p.pss_kb for p in self.procs)

    @property
    def rss_kb(self) -> int:
        return sum(p.rss_kb for p in self.procs)

    @property
    def fds(self) -> int:
        return sum(p.fds for p in self.procs)

    @property
    def count(self) -> int:
        return len(self.procs)

    def pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.procs)


def read_proc(pid: int, ppid: int, pgid: int, depth: int, proc: Path = Path("/proc")
              ) -> Proc | None:
    """One process's PSS, RSS (kB), open descriptors and name; None if it has gone."""
    base = proc / str(pid)
    try:
        rollup = parse_rollup((base / "smaps_rollup").read_text())
        kinds: Counter[str] = Counter()
        for fd in os.listdir(base / "fd"):
            try:
                kinds[fd_kind(os.readlink(base / "fd" / fd))] += 1
            except OSError:  # closed meanwhile
                continue
        argv = [a for a in (base / "cmdline").read_bytes().decode(errors="replace").split("\0")
                if a] or [f"[{(base / 'comm').read_text().strip()}]"]  # a zombie has no argv
    except OSError:  # gone meanwhile
        return None
    return Proc(pid, ppid, pgid, depth, label(argv), rollup.get("Pss", 0),
                rollup.get("Rss", 0), kinds.total(), dict(kinds))


def snapshot(root: int, marker: str | None = None) -> Snapshot:
    """The tree of ``root`` now: one :class:`Proc` per live process."""
    pids, table = tree_pids(root, marker)
    depth: dict[int, int] = {}
    procs = []
    for pid in pids:
        ppid, pgid = table[pid]
        depth[pid] = depth.get(ppid, -1) + 1 if ppid in depth else 0
        p = read_proc(pid, ppid, pgid, depth[pid])
        if p is not None:
            procs.append(p)
    return Snapshot(procs)


def is_settled(samples: list[Snapshot], tolerance: float = 0.01, n: int = 3) -> bool:
    """The last ``n`` samples have the same processes and PSS within ``tolerance``."""
    if len(samples) < n:
        return False
    last = samples[-n:]
    if len({s.pids() for s in last}) != 1 or not last[0].procs:
        return False
    pss = [s.pss_kb for s in last]
    return max(pss) - min(pss) <= tolerance * max(pss)


def settle(root: int, marker: str | None, min_seconds: float, max_seconds: float = 90,
           interval: float = 1.0) -> Snapshot:
    """Sample the tree every ``interval`` until :func:`is_settled` (and at least
    ``min_seconds``); the last sample, ``settled=False`` if ``max_seconds`` ran out."""
    start = time.monotonic()
    samples: list[Snapshot] = []
    while True:
        samples.append(snapshot(root, marker))
        waited = time.monotonic() - start
        if waited >= min_seconds and is_settled(samples):
            return samples[-1]
        if waited >= max_seconds:
            samples[-1].settled = False
            return samples[-1]
        time.sleep(interval)


class PeakSampler:
    """Samples a tree in the background; keeps the largest PSS, process and fd counts."""

    def __init__(self, root: int, marker: str, interval: float = 2.0) -> None:
        self.root, self.marker, self.interval = root, marker, interval
        self.pss_kb = self.count = self.fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            s = snapshot(self.root, self.marker)
            self.pss_kb = max(self.pss_kb, s.pss_kb)
            self.count = max(self.count, s.count)
            self.fds = max(self.fds, s.fds)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sharewise_command() -> list[str]:
    script = Path(sys.executable).with_name("sharewise")
    if not script.exists():
        raise SystemExit(f"no {script}: install the project into this venv (pip install -e .)")
    return [str(script)]


class Started:
    """A process this benchmark started in its own session (so its group can be killed), with
    the tree's marker in its environment."""

    registry: list[Started] = []

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        import subprocess

        self.name, self.argv, self.log = name, argv, log
        self.marker = f"{uuid.uuid4().hex}-{name}"
        env = {**env, MARKER_ENV: self.marker}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.pid = self.proc.pid
        self.pgids: set[int] = {self.pid}
        Started.registry.append(self)

    def snapshot(self) -> Snapshot:
        s = snapshot(self.pid, self.marker)
        self.pgids.update(p.pgid for p in s.procs)
        return s

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 30.0) -> list[int]:
        """SIGTERM, up to ``grace`` seconds for the whole tree to go, then SIGKILL to every
        process group seen in the tree and to any marked process left. Returns the pids that
        had to be killed."""
        if self in Started.registry:
            Started.registry.remove(self)
        try:
            pids, table = tree_pids(self.pid, self.marker)
        except OSError:
            pids, table = [], {}
        self.pgids.update(table[p][1] for p in pids if p in table)
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()
            if not self._leftovers(set(pids)):
                break
            time.sleep(0.2)
        killed = sorted(self._leftovers(set(pids)))
        for pgid in sorted(self.pgids) if killed else ():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(10)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: left to the OS
            pass
        return killed

    def _leftovers(self, pids: set[int]) -> set[int]:
        """Processes of the tree still there (zombies of our own child aside)."""
        left = set()
        table = process_table()
        for pid in pids | {p for p in table if has_marker(p, self.marker)}:
            if pid not in table:
                continue
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                left.add(pid)
        return left


def stop_all() -> None:
    for started in reversed(list(Started.registry)):
        try:
            killed = started.stop(grace=20)
            if killed:
                print(f"  cleanup: {started.name}: killed {len(killed)} process(es) left after "
                      "SIGTERM", flush=True)
        except Exception as exc:  # noqa: BLE001 - clean up the others whatever happens
            print(f"  cleanup of {started.name} failed: {exc!r}", file=sys.stderr)


def wait_http(url: str, started: Started, timeout: float = 90) -> None:
    """Until ``url`` answers 200 (or the process dies / time runs out: SystemExit)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not started.alive():
            raise SystemExit(f"{started.name} exited with {started.proc.returncode}; its log:\n"
                             f"{started.log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{started.name} did not answer {url} in {timeout:g} s; its log:\n"
                     f"{started.log_tail()}")


def wait_log(started: Started, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in started.log_tail(200_000):
            return
        if not started.alive():
            break
        time.sleep(0.2)
    raise SystemExit(f"{started.name} did not log {text!r}; its log:\n{started.log_tail()}")


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SHAREWISE_") and k != MARKER_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def bare_argvs(data_dir: Path, port: int) -> tuple[list[str], list[str], dict[str, Any]]:
    """The bare gunicorn and Celery worker argvs: serve's own (``_web_argv``,
    ``_worker_argv`` of ``plugin/cli.py``) with the bare apps in place of Sharewise's, and the
    broker configuration of the embedded broker in ``data_dir``."""
    from sharewise.plugin import cli, settings

    s = settings.build(environ={"SHAREWISE_DATA_DIR": str(data_dir),
                                "SHAREWISE_HOST": "127.0.0.1", "SHAREWISE_PORT": str(port)})
    web = list(cli._web_argv(s))
    if SHAREWISE_APP in web:
        web[web.index(SHAREWISE_APP)] = BARE_APP
    else:
        raise SystemExit(f"`serve`'s web argv no longer names {SHAREWISE_APP}: {web}")
    if "--config" in web:  # serve's hooks connect Sharewise's task producer: the bare app has none
        del web[web.index("--config"):web.index("--config") + 2]
    # serve's one worker (threads pool); beat runs in it as a thread, which the bare app lacks
    worker = [arg for arg in cli._worker_argv(s, embedded=True) if arg != "--beat-thread"]
    if "-A" in worker:
        worker[worker.index("-A") + 1] = BARE_CELERY
    else:
        raise SystemExit(f"`serve`'s worker argv has no -A: {worker}")
    # the same embedded broker through kombu's own transport (Sharewise's subclass of it only
    # skips damaged messages, and would import the plugin into the baseline)
    return web, worker, {"broker_url": s.broker_url}


# --------------------------------------------------------------------------- the host


class PostBacks:
    """``on_receipt`` of the host simulator: which records' ``share.record_completed`` it
    stored, duplicates, and PDFs that do not match their announced hash."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.completed: set[str] = set()
        self.duplicates = 0
        self.bad_pdf = 0
        self.other: Counter[str] = Counter()

    def __call__(self, received: Any, body: dict[str, Any]) -> None:
        data = body.get("data") or {}
        ok = True
        if body.get("type") == "share.record_completed":
            pdf = data.get("pdf") or {}
            try:
                raw = base64.b64decode(pdf.get("base64", ""), validate=True)
                ok = hashlib.sha256(raw).hexdigest() == pdf.get("sha256")
            except (TypeError, ValueError):
                ok = False
        with self.cond:
            if received.duplicate:
                self.duplicates += 1
            elif body.get("type") == "share.record_completed":
                self.completed.add(str(data.get("record_id")))
                self.bad_pdf += not ok
            else:
                self.other[str(body.get("type"))] += 1
            self.cond.notify_all()

    def wait(self, ids: Iterable[str], timeout: float) -> set[str]:
        """Wait until every record in ``ids`` was posted back; the ones still missing."""
        wanted = set(ids)
        with self.cond:
            self.cond.wait_for(lambda: wanted <= self.completed, timeout=timeout)
            return wanted - self.completed


# --------------------------------------------------------------------------- the journey


@dataclass
class Service:
    base: str
    secret: str
    db: Path


class JourneyError(Exception):
    pass


class Journeys:
    """Records pushed through the practitioner's journey over HTTP, one client per thread."""

    def __init__(self, service: Service) -> None:
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.plugin.uploads.journey import complete_answers, partial_answers

        self.service = service
        self.complete_answers, self.partial_answers = complete_answers, partial_answers
        self.local = threading.local()

    def _client(self) -> Any:
        import httpx

        if getattr(self.local, "client", None) is None:
            self.local.client = httpx.Client(timeout=120)
        return self.local.client

    def _prefill(self, record_id: str) -> tuple[dict[str, Any], str, int]:
        if getattr(self.local, "db", None) is None:
            import sqlite3

            self.local.db = sqlite3.connect(self.service.db, timeout=30)
            self.local.db.execute("PRAGMA query_only = 1")
        row = self.local.db.execute("SELECT prefill, prefill_hash, schema_version FROM records "
                                    "WHERE public_id = ?", (record_id,)).fetchone()
        if row is None:
            raise JourneyError(f"{record_id} is not in the database")
        if getattr(self.local, "keys", None) is None:
            self.local.keys = service_keyring(Path(self.service.db))
        from sharewise.plugin.sealed import unseal

        prefill = unseal(self.local.keys, row[0], f"records.prefill:{record_id}")  # sealed
        return prefill, row[1], row[2]

    def _filled(self, record_id: str, answers: Any) -> bytes:
        """As ``tests/plugin/uploads/journey.py`` ``filled_pdf``: the record's form filled
        with ``answers(version)`` on top of its prefilled values."""
        from sharewise.forms.prefill import fill

        prefill, prefill_hash, version = self._prefill(record_id)
        return fill({**prefill, **answers(version)}, record_id=record_id,
                    prefill_hash=prefill_hash, version=version).pdf

    def _upload(self, url: str, pdf: bytes, expect: str) -> dict[str, Any]:
        resp = self._client().post(url, content=pdf, headers={
            "content-type": "application/pdf", "accept": "application/json"})
        if resp.status_code != 200:
            raise JourneyError(f"upload answered {resp.status_code}: {resp.text[:300]}")
        answer = resp.json()
        if answer.get("status") != expect:
            raise JourneyError(f"upload: status {answer.get('status')!r}, expected {expect!r}"
                               f" (missing: {answer.get('missing')})")
        return answer

    def one(self, request_id: str, partial: bool) -> str:
        """One record: intake, the prefilled PDF, [a partial upload,] a complete upload;
        returns its record id (the post-back is awaited by the caller)."""
        from sharewise.plugin.demo import sample_event, signed_request

        client = self._client()
        body, headers = signed_request(self.service.secret,
                                       sample_event(request_id=request_id))
        resp = client.post(f"{self.service.base}/webhooks/{TENANT}", content=body,
                           headers=headers)
        if resp.status_code != 201:
            raise JourneyError(f"share.requested answered {resp.status_code}: "
                               f"{resp.text[:300]}")
        answer = resp.json()
        record_id = answer["record_id"]
        pdf = client.get(answer["form_pdf_url"])
        if pdf.status_code != 200 or not pdf.content.startswith(b"%PDF-"):
            raise JourneyError(f"form_pdf_url answered {pdf.status_code}")
        if partial:
            got = self._upload(answer["upload_url"],
                               self._filled(record_id, self.partial_answers), "incomplete")
            if not got.get("missing"):
                raise JourneyError("a partial upload answered incomplete with nothing missing")
        self._upload(answer["upload_url"],
                     self._filled(record_id, self.complete_answers), "complete")
        status = client.get(answer["status_url"])
        if status.status_code != 200 or status.json().get("status") != "complete":
            raise JourneyError(f"status_url answered {status.status_code}: {status.text[:200]}")
        return record_id

    def many(self, request_ids: list[str], partial: bool, clients: int) -> list[str]:
        pool = ThreadPoolExecutor(max_workers=clients)
        try:
            futures = [pool.submit(self.one, rid, partial) for rid in request_ids]
            return [f.result() for f in futures]  # the first failure fails the run
        finally:  # on a failure or an interrupt, the journeys not begun are dropped
            pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- the backlog


class _Poster:
    """One keep-alive connection posting to ``base + path``: an ``httpx.Client`` or (lighter on
    the CPU) an ``http.client.HTTPConnection``. ``post`` returns the status; a broken
    connection raises one of ``errors``."""

    def __init__(self, kind: str, base: str, path: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        import httpx

        self.kind, self.url, self.path = kind, f"{base}{path}", path
        self.errors = (httpx.TransportError, http.client.HTTPException, OSError)
        if kind == "httpx":
            self.client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=1))
        else:
            split = urlsplit(base)
            self.conn = http.client.HTTPConnection(split.hostname, split.port, timeout=120)

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        if self.kind == "httpx":
            return self.client.post(self.url, content=body, headers=headers).status_code
        try:
            self.conn.request("POST", self.path, body=body, headers=headers)
            resp = self.conn.getresponse()
            resp.read()
        except self.errors:
            self.conn.close()  # the next request opens a new connection
            raise
        return resp.status

    def close(self) -> None:
        (self.client if self.kind == "httpx" else self.conn).close()


def _backlog_client(base: str, path: str, secret: str, request_ids: list[str], threads: int,
                    start_at: float, out: Any, kind: str = "httpx") -> None:
    """One client process: ``threads`` keep-alive connections (:class:`_Poster`) posting
    freshly signed ``share.requested`` events (one per request id) as fast as the answers come
    back."""
    from sharewise.plugin.demo import sample_event, signed_request

    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    retried = [0]
    ends: list[float] = []
    pending = iter(request_ids)

    def worker() -> None:
        poster = _Poster(kind, base, path)
        try:
            while True:
                with lock:
                    rid = next(pending, None)
                if rid is None:
                    break
                body, headers = signed_request(secret, sample_event(request_id=rid))
                status = None
                for attempt in (1, 2):  # a closed keep-alive connection: once more, same id
                    try:
                        status = poster.post(body, headers)
                        break
                    except poster.errors as exc:
                        with lock:
                            if attempt == 2:
                                errors.append(f"{rid}: {type(exc).__name__}: {exc}")
                            else:
                                retried[0] += 1
                if status is not None:
                    with lock:
                        statuses[status] += 1
        finally:
            poster.close()
            with lock:
                ends.append(time.monotonic())

    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    begin, cpu = time.monotonic(), time.process_time()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((dict(statuses), errors, retried[0], begin, max(ends) if ends else begin,
             time.process_time() - cpu))


def backlog(base: str, path: str, secret: str, request_ids: list[str], connections: int,
            procs: int, kind: str = "httpx") -> dict[str, Any]:
    """Post one event per request id over ``connections`` connections spread over ``procs``
    processes; statuses, transport errors, and events/s (201 answers per second)."""
    import multiprocessing as mp

    procs = max(1, min(procs, connections))
    per_proc = [connections // procs + (1 if n < connections % procs else 0)
                for n in range(procs)]
    shares = [request_ids[n::procs] for n in range(procs)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.monotonic() + 3.0  # time for the spawned interpreters to start
    workers = [ctx.Process(target=_backlog_client, daemon=True,
                           args=(base, path, secret, share, threads, start_at, out, kind))
               for share, threads in zip(shares, per_proc, strict=True)]
    try:
        for w in workers:
            w.start()
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        retried, begins, ends, client_cpu = 0, [], [], 0.0
        for _ in workers:
            got, errs, retries, begin, end, cpu = out.get(timeout=3600)
            client_cpu += cpu
            statuses.update({int(k): v for k, v in got.items()})
            errors += errs
            retried += retries
            begins.append(begin)
            ends.append(end)
    finally:
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
                w.join()
    seconds = max(max(ends) - min(begins), 1e-9)
    return {
        "events": len(request_ids),
        "seconds": seconds,
        "events_per_s": statuses[201] / seconds,
        "answers_per_s": statuses.total() / seconds,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": len(errors),
        "first_errors": errors[:3],
        "retried": retried,
        "client_cpu_s": client_cpu,
    }


def service_keyring(db: Path) -> Any:
    """The keyring of the service whose database is ``db`` (the embedded default's key file
    beside it), to open what it sealed."""
    from sharewise.plugin.crypto import Keyring
    from sharewise.plugin.settings import ensure_encryption_key

    return Keyring.from_text([ensure_encryption_key(db.parent)])


def count_records(db: Path, tenant: str, ids: Sequence[str]) -> dict[str, int]:
    """How many records, and distinct request ids, the database holds for the request ids
    ``ids`` (found by their keyed hashes: the ids themselves are sealed)."""
    import sqlite3

    from sharewise.plugin.records.models import request_hash

    keys = service_keyring(db)
    hashes = [request_hash(keys, tenant, i)[0] for i in ids]
    rows = distinct = 0
    with sqlite3.connect(db, timeout=30) as conn:
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            marks = ",".join("?" * len(chunk))
            n, d = conn.execute(
                f"SELECT COUNT(*), COUNT(DISTINCT request_hash) FROM records "  # noqa: S608
                f"WHERE tenant = ? AND request_hash IN ({marks})", (tenant, *chunk)).fetchone()
            rows, distinct = rows + n, distinct + d
    return {"rows": rows, "distinct": distinct}


# --------------------------------------------------------------------------- reporting


def mb(kb: float) -> str:
    return f"{kb / MB:.1f} MB"


def print_tree(title: str, s: Snapshot) -> None:
    note = "" if s.settled else " (did NOT settle within the time allowed)"
    print(f"{title}: {s.count} processes, PSS {mb(s.pss_kb)}, RSS sum {mb(s.rss_kb)}, "
          f"{s.fds} open fds{note}")
    print(f"    {'pid':>7} {'PSS MB':>8} {'RSS MB':>8} {'fds':>5}  command")
    for p in s.procs:
        print(f"    {p.pid:>7} {p.pss_kb / MB:8.1f} {p.rss_kb / MB:8.1f} {p.fds:>5}  "
              f"{'  ' * p.depth}{p.name}")


def fd_change(before: Mapping[str, int], after: Mapping[str, int]) -> str:
    """``"sharewise.db +2, socket -1"``: how the kinds of open descriptors changed."""
    kinds = sorted(set(before) | set(after))
    return ", ".join(f"{k} {after.get(k, 0) - before.get(k, 0):+d}" for k in kinds
                     if after.get(k, 0) != before.get(k, 0))


def growth_lines(before: Snapshot, after: Snapshot, least_kb: int = 1024) -> list[str]:
    """Where the PSS and descriptors went between two snapshots of a tree: processes in both
    whose PSS moved by ``least_kb`` or more or whose descriptors changed, processes that are
    new, processes that are gone."""
    old = {p.pid: p for p in before.procs}
    new = {p.pid: p for p in after.procs}
    lines = []
    for pid, p in new.items():
        if pid not in old:
            lines.append(f"{pid} {p.name}: new, {p.pss_kb / MB:.1f} MB, {p.fds} fds")
            continue
        moved = abs(p.pss_kb - old[pid].pss_kb) >= least_kb
        if moved or p.fds != old[pid].fds:
            line = f"{pid} {p.name}: {(p.pss_kb - old[pid].pss_kb) / MB:+.1f} MB"
            if p.fds != old[pid].fds:
                line += (f", fds {p.fds - old[pid].fds:+d} "
                         f"({fd_change(old[pid].fd_kinds, p.fd_kinds)})")
            lines.append(line)
    lines += [f"{pid} {p.name}: gone, was {p.pss_kb / MB:.1f} MB, {p.fds} fds"
              for pid, p in old.items() if pid not in new]
    return lines


def print_rate(name: str, r: dict[str, Any]) -> None:
    print(f"  {name:<13} {r['events_per_s']:7.1f} events/s in {r['seconds']:5.1f} s, answers "
          f"{r['statuses']}, transport errors {r['errors']}, retried {r['retried']}; CPU: "
          f"server {r['server_cpu_s']:.1f} s, clients {r['client_cpu_s']:.1f} s", flush=True)
    for e in r["first_errors"]:
        print(f"    error: {e}")


def snap_json(s: Snapshot) -> dict[str, Any]:
    return {"pss_kb": s.pss_kb, "rss_kb": s.rss_kb, "fds": s.fds, "count": s.count,
            "settled": s.settled, "procs": [asdict(p) for p in s.procs]}


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(figure, value, baseline, goal, met) of each goal, from the results."""
    rows: list[tuple[str, str, str, str, bool]] = []
    rest, base = r["rest"]["pss_kb"], r["baseline_rest"]["pss_kb"]
    rows.append(("PSS at rest", mb(rest), f"{mb(base)} (bare gunicorn + celery)",
                 f"<= {GOAL_REST_MB} MB", rest <= GOAL_REST_MB * MB))
    if "used" in r:
        used = r["used"]
        growth = (used["pss_kb"] - rest) / rest
        rows.append(("PSS after use", f"{mb(used['pss_kb'])} ({growth:+.1%})",
                     f"{mb(rest)} at rest", f"<= +{GOAL_GROWTH:.0%}", growth <= GOAL_GROWTH))
        rows.append(("processes after use", str(used["count"]),
                     f"{r['rest']['count']} at rest", "back where they started",
                     used["count"] == r["rest"]["count"]))
        rows.append(("open fds after use", str(used["fds"]), f"{r['rest']['fds']} at rest",
                     "back where they started", used["fds"] <= r["rest"]["fds"]))
    if "backlog" in r:
        b = r["backlog"]
        bare = r["bare_events_per_s"]
        rows.append(("backlog events/s", f"{b['events_per_s']:.1f}",
                     f"{bare:.1f} (bare endpoint)", f"> {GOAL_EVENTS_PER_S}/s",
                     b["events_per_s"] > GOAL_EVENTS_PER_S))
        db = b["db"]
        exact = (db["rows"] == db["distinct"] == b["events"]
                 and b["statuses"] == {"201": b["events"]} and not b["errors"])
        rows.append(("backlog recorded once", f"{db['rows']} rows, {db['distinct']} ids, "
                     f"answers {b['statuses']}", f"{b['events']} events",
                     "each once, all 201", exact))
    return rows


def print_summary(rows: list[tuple[str, str, str, str, bool]]) -> None:
    head = ("figure", "value", "baseline", "goal", "met?")
    table = [head, *[(f, v, b, g, "yes" if m else "NO") for f, v, b, g, m in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    print("\nSummary")
    for n, row in enumerate(table):
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------- main


def write_tenants(path: Path, webhook_secret: str, callback_url: str, callback_secret: str
                  ) -> None:
    path.write_text(
        f"[tenants.{TENANT}]\n"
        'name = "Footprint benchmark"\n'
        f'webhook_secret = "{webhook_secret}"\n'
        f'callback_url = "{callback_url}"\n'
        f'callback_secret = "{callback_secret}"\n'
    )


def database_path(env: Mapping[str, str]) -> Path:
    from sharewise.plugin import settings

    url = settings.build(environ=env).database_url
    if not url.startswith("sqlite:///"):
        raise SystemExit(f"the embedded default is no longer SQLite: {url}")
    return Path(url.removeprefix("sqlite:///"))


def measure_baseline(tmp: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    data = tmp / "bare"
    data.mkdir()
    port = free_port()
    web, worker, broker = bare_argvs(data, port)
    env = {**base_env(), BARE_BROKER_ENV: json.dumps(broker)}
    results["bare_argv"] = {"web": web, "worker": worker}
    print(f"baseline: {' '.join(web[2:])}\n          {' '.join(worker[2:])}", flush=True)
    g = Started("bare-web", web, env, tmp / "bare-web.log")
    c = Started("bare-worker", worker, env, tmp / "bare-worker.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", g)
        wait_log(c, "ready.")
        import httpx

        for _ in range(8):  # let every web process answer something
            httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        snaps = [settle(x.pid, x.marker, args.settle) for x in (g, c)]
        for x in (g, c):
            x.snapshot()  # keep the groups for the stop
        combined = Snapshot(snaps[0].procs + snaps[1].procs,
                            settled=snaps[0].settled and snaps[1].settled)
    finally:
        c.stop()
        g.stop()
    results["baseline_rest"] = snap_json(combined)
    print_tree("baseline at rest (bare Flask under gunicorn + bare Celery worker)", combined)


def bare_rate(tmp: Path, args: argparse.Namespace, n: int, tag: str) -> dict[str, Any]:
    """The backlog client against the bare app's webhook endpoint (a fresh bare gunicorn)."""
    port = free_port()
    web, _worker, _broker = bare_argvs(tmp / "bare", port)
    g = Started(f"bare-web-{tag}", web, base_env(), tmp / "bare-web.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", g)
        ids = [f"BARE-{tag}-{k}" for k in range(n)]
        cpu = tree_cpu_seconds(g.pid, g.marker)
        got = backlog(f"http://127.0.0.1:{port}", f"/webhooks/{TENANT}", new_secret(), ids,
                      args.connections, args.client_procs, args.client)
        got["server_cpu_s"] = tree_cpu_seconds(g.pid, g.marker) - cpu
        return got
    finally:
        g.stop()


def run(tmp: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    from sharewise.plugin.outbox.hostsim import HostSimulator

    run_id = uuid.uuid4().hex[:8]
    measure_baseline(tmp, args, results)

    webhook_secret, callback_secret = new_secret(), new_secret()
    postbacks = PostBacks()
    sim = HostSimulator(callback_secret, on_receipt=postbacks).start()
    try:
        tenants = tmp / "tenants.toml"
        write_tenants(tenants, webhook_secret, sim.url, callback_secret)
        port = free_port()
        env = {**base_env(), "SHAREWISE_DATA_DIR": str(tmp / "var"),
               "SHAREWISE_TENANTS": str(tenants), "SHAREWISE_HOST": "127.0.0.1",
               "SHAREWISE_PORT": str(port)}
        service = Service(f"http://127.0.0.1:{port}", webhook_secret, database_path(env))
        argv = [*sharewise_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        t0 = time.monotonic()
        serve = Started("serve", argv, env, tmp / "serve.log")
        wait_http(f"{service.base}/healthz", serve)
        results["serve_start_s"] = time.monotonic() - t0
        print(f"\nsharewise serve (pid {serve.pid}) answers on {service.base} after "
              f"{results['serve_start_s']:.1f} s; host simulator on {sim.url}", flush=True)
        journeys = Journeys(service)

        # 1. at rest, after one record's journey
        first = journeys.one(f"FP-{run_id}-first", partial=False)
        if missing := postbacks.wait([first], timeout=120):
            raise SystemExit(f"the host never got the post-back of {missing}; serve's log:\n"
                             f"{serve.log_tail()}")
        rest = settle(serve.pid, serve.marker, args.settle)
        serve.snapshot()
        results["rest"] = snap_json(rest)
        print_tree("sharewise serve at rest (one record through the journey)", rest)
        print(f"  -> PSS {mb(rest.pss_kb)} vs baseline "
              f"{mb(results['baseline_rest']['pss_kb'])}; goal <= {GOAL_REST_MB} MB", flush=True)

        # 2. under use
        if args.records:
            print(f"\nunder use: {args.records} records (intake, prefilled PDF, partial upload,"
                  f" complete upload, post-back) from {args.clients} clients...", flush=True)
            ids = [f"FP-{run_id}-{k}" for k in range(args.records)]
            t0, cpu0 = time.monotonic(), (time.process_time(),
                                           tree_cpu_seconds(serve.pid, serve.marker))
            with PeakSampler(serve.pid, serve.marker) as peak:
                records = journeys.many(ids, partial=True, clients=args.clients)
                uploaded = time.monotonic() - t0
                missing = postbacks.wait(records, timeout=max(120.0, 0.2 * len(records)))
                delivered = time.monotonic() - t0
            cpu = (time.process_time() - cpu0[0],
                   tree_cpu_seconds(serve.pid, serve.marker) - cpu0[1])
            if missing:
                raise SystemExit(f"{len(missing)} post-backs never reached the host, e.g. "
                                 f"{sorted(missing)[:3]}; serve's log:\n{serve.log_tail()}")
            used = settle(serve.pid, serve.marker, args.settle)
            serve.snapshot()
            results["used"] = snap_json(used)
            results["journeys"] = {
                "records": len(records), "uploaded_s": uploaded, "delivered_s": delivered,
                "per_s": len(records) / delivered, "peak_pss_kb": peak.pss_kb,
                "peak_count": peak.count, "peak_fds": peak.fds,
                "postback_duplicates": postbacks.duplicates, "bad_pdf": postbacks.bad_pdf,
                "other_postbacks": dict(postbacks.other),
                "client_cpu_s": cpu[0], "server_cpu_s": cpu[1],
            }
            j = results["journeys"]
            print(f"  {len(records)} journeys done in {uploaded:.1f} s, every post-back at the "
                  f"host after {delivered:.1f} s ({j['per_s']:.1f} records/s); host saw "
                  f"{postbacks.duplicates} duplicate post-backs, {postbacks.bad_pdf} PDFs not "
                  f"matching their hash, other events {dict(postbacks.other) or 'none'}")
            print(f"  CPU: serve's tree {cpu[1]:.1f} s, this client (filling the forms, the "
                  f"host) {cpu[0]:.1f} s; peak while working: PSS {mb(peak.pss_kb)}, "
                  f"{peak.count} processes, {peak.fds} fds (information)")
            print_tree("sharewise serve after use", used)
            growth = (used.pss_kb - rest.pss_kb) / rest.pss_kb
            print(f"  -> PSS {mb(used.pss_kb)} vs {mb(rest.pss_kb)} at rest ({growth:+.1%}; "
                  f"goal <= +{GOAL_GROWTH:.0%}); processes {rest.count} -> {used.count}; "
                  f"open fds {rest.fds} -> {used.fds}", flush=True)
            for line in growth_lines(rest, used):
                print(f"    {line}")

        # 3. backlog
        if args.events:
            print(f"\nbacklog: {args.events} share.requested at {args.connections} "
                  f"connections ({args.client_procs} client processes, {args.client})...",
                  flush=True)
            bare_before = bare_rate(tmp, args, args.events, "before")
            print_rate("bare endpoint", bare_before)
            prefix = f"BL-{run_id}-"
            ids = [f"{prefix}{k}" for k in range(args.events)]
            cpu = tree_cpu_seconds(serve.pid, serve.marker)
            with PeakSampler(serve.pid, serve.marker) as peak:
                b = backlog(service.base, f"/webhooks/{TENANT}", webhook_secret, ids,
                            args.connections, args.client_procs, args.client)
            b["server_cpu_s"] = tree_cpu_seconds(serve.pid, serve.marker) - cpu
            b["db"] = count_records(service.db, TENANT, ids)
            b["peak_pss_kb"], b["peak_count"] = peak.pss_kb, peak.count
            print_rate("sharewise", b)
            print(f"  database: {b['db']['rows']} records, {b['db']['distinct']} distinct "
                  f"request ids, for {b['events']} events", flush=True)
            bare_after = bare_rate(tmp, args, args.events, "after")
            print_rate("bare endpoint", bare_after)
            results["backlog"] = b
            results["bare_backlog"] = [bare_before, bare_after]
            results["bare_events_per_s"] = (bare_before["events_per_s"]
                                            + bare_after["events_per_s"]) / 2
            after = settle(serve.pid, serve.marker, args.settle)
            serve.snapshot()
            results["after_backlog"] = snap_json(after)
            since, name = (used, "after use") if args.records else (rest, "at rest")
            print(f"  -> {b['events_per_s']:.1f} events/s vs bare "
                  f"{results['bare_events_per_s']:.1f} (mean of before and after); goal > "
                  f"{GOAL_EVENTS_PER_S}/s. Peak while posting: PSS {mb(peak.pss_kb)}, "
                  f"{peak.count} processes", flush=True)
            print(f"  the tree settled after the backlog, beside {name} (information): "
                  f"{since.count} -> {after.count} processes, {since.fds} -> {after.fds} fds, "
                  f"PSS {mb(since.pss_kb)} -> {mb(after.pss_kb)}")
            for line in growth_lines(since, after):
                print(f"    {line}")

        if not serve.alive():
            raise SystemExit(f"serve exited ({serve.proc.returncode}) during the run:\n"
                             f"{serve.log_tail()}")
        t0 = time.monotonic()
        killed = serve.stop()
        results["serve_stop"] = {"seconds": time.monotonic() - t0, "killed": killed,
                                 "returncode": serve.proc.returncode}
        print(f"\nserve stopped in {results['serve_stop']['seconds']:.1f} s (exit "
              f"{serve.proc.returncode}" + (f"; {len(killed)} process(es) still there after the "
                                            "grace period were killed" if killed else "")
              + ")")
    finally:
        sim.stop()


def save_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(exist_ok=True)
    (out / "footprint.json").write_text(json.dumps(results, indent=2, default=str))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--records", type=int, default=1000,
                        help="records pushed through the journey under use (0: skip)")
    parser.add_argument("--events", type=int, default=10000,
                        help="share.requested events of the backlog (0: skip)")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent clients of the journeys")
    parser.add_argument("--connections", type=int, default=20,
                        help="concurrent connections of the backlog")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="processes the backlog's connections are spread over")
    parser.add_argument("--client", choices=("http.client", "httpx"), default="http.client",
                        help="the backlog's HTTP client (httpx takes about three times "
                             "http.client's CPU per request)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="least seconds to wait for the tree to settle before measuring")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs, database) and print it")
    args = parser.parse_args(argv)

    def _terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
                               "args": vars(args)}
    tmp = Path(tempfile.mkdtemp(prefix="sharewise-footprint-"))
    failed = False
    try:
        run(tmp, args, results)
    except BaseException as exc:
        failed = True
        if isinstance(exc, KeyboardInterrupt):
            print(f"\nfootprint: interrupted ({exc or 'Ctrl-C'}); stopping everything",
                  file=sys.stderr, flush=True)
        elif not isinstance(exc, SystemExit):
            traceback.print_exc()
        elif isinstance(exc, SystemExit) and exc.code not in (None, 0):
            print(f"\nfootprint: {exc.code}", file=sys.stderr)
    finally:
        stop_all()
        if args.keep or failed:
            print(f"(temporary directory kept: {tmp})")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    results["load_after"] = os.getloadavg()[0]
    if "rest" in results and "baseline_rest" in results:
        print_summary(summary_rows(results))
        print(f"  ({results['cpus']} CPUs; load average {results['load_before']:.2f} before, "
              f"{results['load_after']:.2f} after. PSS shares pages with every other process "
              "mapping them, so other Python processes on the machine lower it a little.)")
        save_results(results, REPO / "bench" / "results")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
