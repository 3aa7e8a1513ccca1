"""Webhook intake throughput against a bare Flask endpoint, and p99 latency at 50 events/s.

Run: ``.venv/bin/python -m bench.bench_intake`` (``--rounds 3 --seconds 10 --clients 2
--threads 4 --slice 2 --rate 50 --paced-seconds 10``; about 90 s).

Both servers run the same way on this machine: gunicorn with the
settings ``sharewise web`` uses (``WEB_WORKERS`` processes x ``WEB_THREADS`` gthread threads,
default 2 x 4), on the embedded default (SQLite in a temporary ``DATA_DIR``, local file store).

* **bare**: ``bench.bench_intake:bare_app``, a Flask app whose ``POST /webhooks/<tenant>``
  reads the body and answers ``201`` with a small JSON body. No verification, no database.
* **Sharewise**: ``sharewise.plugin.wsgi:app``; every request is a new ``share.requested`` (distinct
  ``request_id`` and ``webhook-id``), so each one is verified (Standard Webhooks HMAC),
  validated (marshmallow: the event, whose leaves are the form's own fields, then the
  prefill values Sharewise derives with the form library's schema),
  given a due date and prefill's warnings, and written (record with its prefill values and
  hash, audit row, four reminder rows, webhook event: one SQLite transaction, WAL fsync'd
  at commit: ``synchronous=FULL``). As under ``sharewise web``, one of the two web
  processes keeps the database's intake writer process running, which commits the
  intakes of both together (``--intake-writer off``: each web process commits its own;
  every round prints how many writer processes it found under the server). The prefilled
  PDF is made on its first download, which is timed separately (first and second download
  of ``--downloads`` records).

Throughput: both servers run at once, and the load moves between them: ``--clients``
processes x ``--threads`` threads, each with a keep-alive HTTP/1.1 connection (a new one every
``--per-connection`` requests), post as fast as answers come back to one server for
``--slice`` seconds, then to the other, in ABBA order, an even number of slices each and at
least ``--seconds`` of load (6 slices of 2 s by default; the first 0.3 s of every slice is
not counted). A shared machine's speed drifts by a quarter or
more within a minute; measured one server after the other, that drift went into the ratio,
while slices a few seconds apart see the same machine. Every slice's rate is printed and kept.
``--rounds`` times, each on a freshly started pair of servers in the same data directory (the
database grows from round to round); the figures are the medians, the ratio is median over
median. The clients share the 2 cores with the servers, equally for both; the bodies (signed
``share.requested`` events, ~1.3 KB) are the same for both (the bare endpoint gets 200
pre-signed events in turn, intake a fresh event every time). The latency run below has
the machine to itself (the bare server is stopped first).

Latency: requests are started on a fixed schedule (``--rate`` per second, open loop, so a
slow answer does not delay the next request) and the latency of each is measured from its
scheduled start, so queueing is counted. Reported: p50, p99, max.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

bare_app = Flask("bare")


@bare_app.post("/webhooks/<tenant>")
def _bare(tenant: str) -> Any:
    body = request.get_data()
    return jsonify({"received": len(body), "tenant": tenant}), 201


SECRET = "whsec_" + "QmVuY2htYXJrU2VjcmV0Rm9ySW50YWtlMTIzNDU2Nzg="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signed(n: int) -> list[tuple[bytes, dict[str, str]]]:
    from sharewise.plugin.demo import sample_event, signed_request

    out = []
    for _ in range(n):
        rid = f"BENCH-{uuid.uuid4().hex}"
        out.append(signed_request(SECRET, sample_event(request_id=rid)))
    return out


def _start(app_ref: str, port: int, env: dict[str, str], workers: int, threads: int
           ) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
            "--log-level", "warning", app_ref]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{app_ref} did not start")


def _client(schedule_q: Any, ready: Any, out: Any, threads: int, per_connection: int,
            path: str, fresh_bodies: int, fresh_for: frozenset[str]) -> None:
    """One client process: ``threads`` threads, each posting over one keep-alive connection
    (a new one every ``per_connection`` requests) during every slice of the schedule it is
    sent, to that slice's server; counts the statuses of the requests started after each
    slice's warm-up. Servers named in ``fresh_for`` get a new signed event every time, the
    others the same 200 signed events in turn. Sends back the counts, the threads' errors
    and how many slices a thread began after their warm-up (a request of the slice before
    ran over)."""
    work = [_signed(fresh_bodies) for _ in range(threads)]
    ready.put(True)
    schedule: list[tuple[str, int, float, float, float]] = schedule_q.get()
    counts: list[list[dict[str, int]]] = [[{} for _ in schedule] for _ in range(threads)]
    errors: list[str] = []
    late = [0]

    def run(i: int) -> None:
        try:
            slices(i)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
            errors.append(f"{type(exc).__name__}: {exc}")

    def slices(i: int) -> None:
        fresh = iter(work[i])
        repeat = work[i][:200]  # a server that stores nothing: the same bodies will do
        sent = 0
        for n, (name, port, begin, counted, end) in enumerate(schedule):
            delay = begin - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif time.monotonic() > counted:
                late[0] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            tally = counts[i][n]
            k = 0
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                k += 1
                if per_connection and k % per_connection == 0:
                    conn.close()  # a new connection: the server's workers share them anew
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if name in fresh_for:
                    body, headers = next(fresh)  # StopIteration: reported, the run fails
                else:
                    body, headers = repeat[sent % len(repeat)]
                    sent += 1
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if now >= counted:
                    status = str(resp.status)
                    tally[status] = tally.get(status, 0) + 1
            conn.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((counts, errors, late[0]))


def connections_per_worker(port: int) -> list[int]:
    """How many established client connections each server process holds (``ss``)."""
    try:
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    per_pid: dict[str, int] = {}
    for line in out.splitlines():
        if "pid=" in line:
            pid = line.split("pid=", 1)[1].split(",", 1)[0]
            per_pid[pid] = per_pid.get(pid, 0) + 1
    return sorted(per_pid.values(), reverse=True)


def writer_pids(server_pid: int) -> list[int]:
    """The intake writer processes running under the server ``server_pid`` (one of its
    workers starts it: see plugin.writerprocess), read from ``/proc``; none elsewhere."""
    parents: dict[int, int] = {}
    writers = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        if b"sharewise.plugin.records.intakewriter" in cmdline:
            writers.append(int(entry))

    def under(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == server_pid:
                return True
        return False

    return [pid for pid in writers if under(pid)]


def slice_order(pairs: int, names: tuple[str, str] = ("bare", "intake")) -> list[str]:
    """``pairs`` slices of each of two servers in ABBA order (bare, intake, intake, bare,
    bare...): with an even number of pairs, a machine that speeds up or slows down steadily
    during the run weighs on both alike."""
    first, second = names
    order: list[str] = []
    for n in range(pairs):
        order += [first, second] if n % 2 == 0 else [second, first]
    return order


def interleaved(ports: dict[str, int], path: str, seconds: float, slice_seconds: float,
                clients: int, threads: int, per_connection: int, warm: float = 0.3,
                fresh_for: Collection[str] = ("intake",)) -> dict[str, Any]:
    """Throughput of two servers (both running), measured in alternating slices.

    The load goes to one server at a time for ``slice_seconds``, in :func:`slice_order`,
    an even number of slices each, at least ``seconds`` of load each; the first ``warm``
    seconds of a slice are not counted. ``ports`` names the two servers; those in
    ``fresh_for`` get a new signed event with every request, the others the same events
    again and again. Returns per server: requests per counted second, status counts, each
    slice's rate, a mid-slice count of connections per server process; and ``late``, the
    slices a client thread began after their warm-up. Raises :class:`RuntimeError` if a
    client thread failed (its counts would be missing).
    """
    pairs = max(2, math.ceil(seconds / slice_seconds / 2) * 2)
    names = tuple(ports)
    order = slice_order(pairs, names)  # type: ignore[arg-type]
    counted = slice_seconds - warm
    per_thread = int(pairs * slice_seconds * 600) + 400  # intake is far below 600/s a thread
    ctx = mp.get_context("fork")
    ready, out = ctx.Queue(), ctx.Queue()
    queues = [ctx.Queue() for _ in range(clients)]
    procs = [ctx.Process(target=_client, daemon=True,
                         args=(q, ready, out, threads, per_connection, path, per_thread,
                               frozenset(fresh_for))) for q in queues]
    try:
        return _run_schedule(procs, queues, ready, out, ports, order, slice_seconds, warm,
                             counted)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _run_schedule(procs: list[Any], queues: list[Any], ready: Any, out: Any,
                  ports: dict[str, int], order: list[str], slice_seconds: float, warm: float,
                  counted: float) -> dict[str, Any]:
    names = tuple(ports)
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    t0 = time.monotonic() + 0.5
    schedule = []
    for n, name in enumerate(order):
        begin = t0 + n * slice_seconds
        schedule.append((name, ports[name], begin, begin + warm, begin + slice_seconds))
    for q in queues:
        q.put(schedule)
    splits: dict[str, list[int]] = {}
    for name, port, _, _, end in schedule:  # sample each server once, mid-slice
        if name not in splits:
            time.sleep(max(0.0, end - slice_seconds / 2 - time.monotonic()))
            splits[name] = connections_per_worker(port)
    per_slice: list[Counter[str]] = [Counter() for _ in schedule]
    errors: list[str] = []
    late = 0
    for _ in procs:
        counts, failed, started_late = out.get(timeout=len(order) * slice_seconds + 120)
        errors += failed
        late += started_late
        for thread_counts in counts:
            for n, tally in enumerate(thread_counts):
                per_slice[n].update(tally)
    if errors:
        raise RuntimeError(f"{len(errors)} client thread(s) failed, first: {errors[0]}")
    result: dict[str, Any] = {"late": late}
    for name in names:
        slices = [per_slice[n] for n, s in enumerate(schedule) if s[0] == name]
        statuses = sum(slices, Counter())
        result[name] = {
            "rps": statuses.total() / (counted * len(slices)),
            "statuses": dict(statuses),
            "slice_rps": [round(t.total() / counted, 1) for t in slices],
            "connections": splits.get(name, []),
        }
    return result


def paced(port: int, path: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop load at ``rate``/s: latency from each request's scheduled start."""
    n = int(rate * seconds)
    bodies = _signed(n)
    local = threading.local()
    latencies: list[float] = [0.0] * n
    statuses: list[int] = [0] * n
    pdf_urls: list[str] = [""] * n

    def send(i: int, scheduled: float) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body, headers = bodies[i]
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed this idle keep-alive connection (gunicorn: after 2 s); a
            # client reconnects and sends again (same webhook-id: a repeat is safe), and
            # the time that took is part of the latency
            conn.close()
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
        data = resp.read()
        latencies[i] = time.monotonic() - scheduled
        statuses[i] = resp.status
        if resp.status == 201:
            pdf_urls[i] = json.loads(data)["form_pdf_url"]

    t0 = time.monotonic() + 0.2
    with ThreadPoolExecutor(max_workers=32) as pool:
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i, scheduled)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "events": n,
        "rate": rate,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(n - 1, int(n * 0.99))],
        "max_ms": ms[-1],
        "statuses": {str(s): statuses.count(s) for s in set(statuses)},
        "pdf_urls": [u for u in pdf_urls if u],
    }


def downloads(port: int, urls: list[str]) -> dict[str, Any]:
    """Latency of the first download of each prefilled PDF (made then), and of the second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: dict[str, Any] = {"records": len(urls)}
    for label in ("first", "second"):
        ms = []
        for url in urls:
            path = "/" + url.split("://", 1)[-1].split("/", 1)[1]
            t0 = time.monotonic()
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
            ms.append((time.monotonic() - t0) * 1000)
            if resp.status != 200 or not data.startswith(b"%PDF-"):
                raise SystemExit(f"download failed: {resp.status}")
        ms.sort()
        out[f"{label}_p50_ms"] = statistics.median(ms)
        out[f"{label}_max_ms"] = ms[-1]
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10,
                        help="seconds of load per server and round (in slices)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each on a freshly started pair of servers")
    parser.add_argument("--slice", type=float, default=2.0,
                        help="seconds of load on one server before it moves to the other")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--per-connection", type=int, default=25,
                        help="requests per keep-alive connection before a client thread "
                             "opens a new one (0: one connection for the whole run)")
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--downloads", type=int, default=50,
                        help="records whose prefilled PDF is downloaded twice after the runs")
    parser.add_argument("--web-workers", type=int, default=None,
                        help="gunicorn workers for both servers (default: WEB_WORKERS)")
    parser.add_argument("--web-threads", type=int, default=None,
                        help="gunicorn threads for both servers (default: WEB_THREADS)")
    parser.add_argument("--intake-writer", choices=("on", "off"), default="on",
                        help="intake's writer process (INTAKE_WRITER; off: every web process "
                             "commits its own intakes)")
    args = parser.parse_args()

    from sharewise.plugin import settings

    defaults = settings.defaults()
    workers = args.web_workers or int(defaults["WEB_WORKERS"])
    threads = args.web_threads or int(defaults["WEB_THREADS"])
    with tempfile.TemporaryDirectory(prefix="sharewise-bench-") as tmp:
        data = Path(tmp) / "var"
        tenants = Path(tmp) / "tenants.toml"
        tenants.write_text(f'[tenants.bench]\nname = "Bench"\nwebhook_secret = "{SECRET}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        env.update(SHAREWISE_DATA_DIR=str(data), SHAREWISE_TENANTS=str(tenants),
                   SHAREWISE_LOG_LEVEL="WARNING",
                   SHAREWISE_INTAKE_WRITER="true" if args.intake_writer == "on" else "false")
        path = "/webhooks/bench"
        results: dict[str, Any] = {"server": f"gunicorn gthread {workers}x{threads}",
                                   "cpus": os.cpu_count()}

        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            # a fresh server pair each round: how gunicorn's workers happen to share the
            # clients' keep-alive connections moves a single figure, for both servers;
            # medians over rounds measure the servers, not the luck
            ports = {"bare": _free_port(), "intake": _free_port()}
            env["SHAREWISE_PORT"] = str(ports["intake"])
            bare = _start("bench.bench_intake:bare_app", ports["bare"], env, workers, threads)
            try:
                server = _start("sharewise.plugin.wsgi:app", ports["intake"], env, workers, threads)
                try:
                    got = interleaved(ports, path, args.seconds, args.slice, args.clients,
                                      args.threads, args.per_connection)
                    got["writers"] = len(writer_pids(server.pid))
                    if n == args.rounds - 1:
                        bare.terminate()  # the latency run has the machine to itself
                        time.sleep(1)
                        port = ports["intake"]
                        results["paced"] = paced(port, path, args.rate, args.paced_seconds)
                        urls = results["paced"].pop("pdf_urls")[: args.downloads]
                        results["downloads"] = downloads(port, urls)
                finally:
                    server.terminate()
                    server.wait()
            finally:
                bare.terminate()
                bare.wait()
            pairs = list(zip(got["bare"]["slice_rps"], got["intake"]["slice_rps"], strict=True))
            rounds.append({"bare_rps": got["bare"]["rps"], "bare_status": got["bare"]["statuses"],
                           "bare_connections": got["bare"]["connections"],
                           "intake_rps": got["intake"]["rps"],
                           "intake_status": got["intake"]["statuses"],
                           "intake_connections": got["intake"]["connections"],
                           "slices": pairs,
                           "late_slice_starts": got["late"],
                           "writer_processes": got["writers"],
                           "ratio": got["intake"]["rps"] / got["bare"]["rps"]})
        results["rounds"] = rounds
        results["bare_rps"] = statistics.median(r["bare_rps"] for r in rounds)
        results["intake_rps"] = statistics.median(r["intake_rps"] for r in rounds)

    ratio = results["intake_rps"] / results["bare_rps"]
    results["ratio"] = ratio
    print(f"server: {results['server']} on {results['cpus']} CPUs, clients "
          f"{args.clients} processes x {args.threads} threads, {args.seconds:g} s each")
    for n, r in enumerate(results["rounds"], 1):
        split = "/".join(map(str, r["intake_connections"])) or "?"
        bare_split = "/".join(map(str, r["bare_connections"])) or "?"
        print(f"round {n}: bare {r['bare_rps']:7.1f} req/s {r['bare_status']} (connections "
              f"{bare_split}), intake {r['intake_rps']:6.1f} req/s {r['intake_status']} "
              f"(connections {split}, writer processes {r['writer_processes']}), "
              f"ratio {r['ratio']:.3f}")
        each = [i / b for b, i in r["slices"] if b]
        print("         slices (bare, intake req/s): "
              + " ".join(f"{b:.0f}/{i:.0f}" for b, i in r["slices"])
              + (f"; ratio of neighbouring slices {min(each):.3f}-{max(each):.3f}" if each else "")
              + (f"; {r['late_slice_starts']} thread(s) began a slice after its warm-up"
                 if r["late_slice_starts"] else ""))
    print(f"bare Flask endpoint : {results['bare_rps']:8.1f} req/s  (median of "
          f"{len(results['rounds'])} rounds)")
    print(f"Sharewise intake    : {results['intake_rps']:8.1f} req/s  (median)")
    lowest = min(r["ratio"] for r in results["rounds"])
    print(f"ratio intake / bare : {ratio:8.3f}   (target >= 0.25; lowest round {lowest:.3f})")
    p = results["paced"]
    print(f"paced {p['rate']:g}/s for {args.paced_seconds:g} s ({p['events']} events): "
          f"p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.1f} ms "
          f"(target p99 < 100 ms)  {p['statuses']}")
    d = results["downloads"]
    print(f"prefilled PDF download ({d['records']} records): first (made then) p50 "
          f"{d['first_p50_ms']:.1f} ms, max {d['first_max_ms']:.1f} ms; second p50 "
          f"{d['second_p50_ms']:.1f} ms, max {d['second_max_ms']:.1f} ms")
    save_results(results, Path(__file__).with_name("results"))


def _commit() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (``None`` outside git)."""
    here = Path(__file__).parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": rev, "dirty": dirty}


def save_results(results: dict[str, Any], out: Path) -> None:
    """``intake.json`` (the latest run) and one more line of ``intake-history.jsonl`` (every
    run: when, which commit, the figures), so runs can be compared afterwards."""
    out.mkdir(exist_ok=True)
    (out / "intake.json").write_text(json.dumps(results, indent=2))
    stamp = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **_commit()}
    with open(out / "intake-history.jsonl", "a", encoding="utf-8") as history:
        history.write(json.dumps({**stamp, **results}) + "\n")


if __name__ == "__main__":
    main()
