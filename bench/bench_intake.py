"""Webhook intake: p99 latency at 50 events/s and sustained events/s, beside a bare Flask app.

Run: ``.venv/bin/python -m bench.bench_intake`` (defaults ``--rate 50 --paced-seconds 20
--seconds 20 --slice 2 --clients 2 --threads 4 --per-connection 25``; about 2 minutes).

Two servers run at once, on the embedded default (SQLite in a temporary ``DATA_DIR``, local
file store, every other setting at its default):

* **Sharewise**: the ``sharewise web`` command itself (it migrates, then execs gunicorn:
  gthread, ``WEB_WORKERS`` x ``WEB_THREADS`` = 2 x 2 by default, access log on; here
  discarded) serving ``sharewise.plugin.wsgi:app``. Every request is a new signed
  ``share.requested`` (distinct ``request_id`` and ``webhook-id``): verified, validated, and
  written (record, audit row, reminder rows, webhook event) in one ORM transaction, committed
  with ``synchronous=FULL`` before the 201.
* **bare**: the gunicorn argv ``sharewise web`` exec'd (read from ``/proc``), serving
  ``bench.bench_intake:bare_app`` instead: its ``POST /webhooks/<tenant>`` reads the body and
  answers 201 with a small JSON body.

1. Sustained events/s (closed loop; target >= 150/s): ``--clients`` processes x ``--threads``
   threads, each with a keep-alive connection (a new one every ``--per-connection`` requests,
   so gunicorn's two processes share the connections anew), post a freshly signed event as
   soon as the previous answer is back. The load goes to one server at a time in
   ``--slice``-second slices, ABBA order (bare, intake, intake, bare, ...), at least
   ``--seconds`` per server; the first 0.3 s of each slice is not counted. A shared machine's
   speed drifts within a minute; slices a few seconds apart see the same machine. Events/s
   counts 201 answers. The ratio to bare is for information only.
2. Latency (open loop; target p99 < 100 ms at 50 events/s): requests start on a fixed
   schedule (``--rate`` per second for ``--paced-seconds``) whatever the answers do, and each
   latency is measured from its scheduled start, so queueing counts. First on bare, then on
   Sharewise, the other server idle.

Prints both servers' figures; writes ``bench/results/intake.json`` and appends the run, with
its time and commit, to ``bench/results/intake-history.jsonl`` (not committed).
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
SHAREWISE_APP = "sharewise.plugin.wsgi:app"
BARE_APP = "bench.bench_intake:bare_app"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed() -> tuple[bytes, dict[str, str]]:
    """A new signed ``share.requested`` (its own ``request_id`` and ``webhook-id``)."""
    from sharewise.plugin.demo import sample_event, signed_request

    return signed_request(SECRET, sample_event(request_id=f"BENCH-{uuid.uuid4().hex}"))


def sharewise_web_argv(port: int) -> list[str]:
    """The ``sharewise web`` command on ``127.0.0.1:port`` (it migrates, then execs gunicorn)."""
    script = Path(sys.executable).with_name("sharewise")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sharewise.plugin.cli"]
    return [*command, "web", "--host", "127.0.0.1", "--port", str(port)]


def serve(argv: list[str], port: int, env: dict[str, str], log: Path
          ) -> subprocess.Popen[bytes]:
    """Start ``argv`` (access log discarded, error log appended to ``log``) and return once
    it answers HTTP on ``port``."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    raise SystemExit(f"{argv[-1]} did not start; its log:\n{log.read_text()[-3000:]}")


def cmdline(pid: int) -> list[str]:
    """The argv process ``pid`` runs (``sharewise web`` has exec'd gunicorn by then)."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's master: its web processes)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def bare_argv(web: list[str], port: int) -> list[str]:
    """The gunicorn argv of ``sharewise web`` serving the bare app on ``port`` instead."""
    if "gunicorn" not in web or web[-1] != SHAREWISE_APP or "--bind" not in web:
        raise RuntimeError(f"`sharewise web` runs an unexpected command: {web}")
    argv = [*web[:-1], BARE_APP]
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    return argv


def percentile(ms: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``ms`` (``q`` in 0..1)."""
    return ms[max(0, math.ceil(q * len(ms)) - 1)]


def slice_order(pairs: int, names: tuple[str, str] = ("bare", "intake")) -> list[str]:
    """``pairs`` slices of each of two servers in ABBA order (bare, intake, intake, bare,
    bare...): with an even number of pairs, a machine that speeds up or slows down steadily
    during the run weighs on both alike."""
    first, second = names
    order: list[str] = []
    for n in range(pairs):
        order += [first, second] if n % 2 == 0 else [second, first]
    return order


def _client(schedule_q: Any, ready: Any, out: Any, threads: int, per_connection: int,
            path: str) -> None:
    """One client process: ``threads`` threads, each posting freshly signed events over a
    keep-alive connection during every slice of the schedule, to that slice's server; counts
    the statuses of the requests started after each slice's warm-up. Sends back the counts,
    the threads' errors and how many slices a thread began after their warm-up."""
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
        for n, (_name, port, begin, counted, end) in enumerate(schedule):
            delay = begin - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif time.monotonic() > counted:
                late[0] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            tally = counts[i][n]
            k = 0
            while (now := time.monotonic()) < end:
                k += 1
                if per_connection and k % per_connection == 0:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                body, headers = signed()  # the same client work for both servers
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if now >= counted:
                    tally[str(resp.status)] = tally.get(str(resp.status), 0) + 1
            conn.close()

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((counts, errors, late[0]))


def interleaved(ports: dict[str, int], path: str, seconds: float, slice_seconds: float,
                clients: int, threads: int, per_connection: int, warm: float = 0.3
                ) -> dict[str, Any]:
    """Closed-loop throughput of two running servers, measured in alternating slices.

    The load goes to one server at a time for ``slice_seconds``, in :func:`slice_order`, an
    even number of slices each and at least ``seconds`` of load each; the first ``warm``
    seconds of a slice are not counted. Returns per server (named as in ``ports``): ``rps``
    (answers per counted second), ``created_ps`` (201 answers per counted second), status
    counts and each slice's rate; and ``late``, the slices a client thread began after their
    warm-up. Raises :class:`RuntimeError` if a client thread failed.
    """
    pairs = max(2, math.ceil(seconds / slice_seconds / 2) * 2)
    names = tuple(ports)
    order = slice_order(pairs, names)  # type: ignore[arg-type]
    counted = slice_seconds - warm
    ctx = mp.get_context("fork")
    ready, out = ctx.Queue(), ctx.Queue()
    queues = [ctx.Queue() for _ in range(clients)]
    procs = [ctx.Process(target=_client, daemon=True,
                         args=(q, ready, out, threads, per_connection, path)) for q in queues]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=60)
        t0 = time.monotonic() + 0.5
        schedule = []
        for n, name in enumerate(order):
            begin = t0 + n * slice_seconds
            schedule.append((name, ports[name], begin, begin + warm, begin + slice_seconds))
        for q in queues:
            q.put(schedule)
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
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if errors:
        raise RuntimeError(f"{len(errors)} client thread(s) failed, first: {errors[0]}")
    result: dict[str, Any] = {"late": late}
    for name in names:
        slices = [per_slice[n] for n, s in enumerate(schedule) if s[0] == name]
        statuses = sum(slices, Counter())
        result[name] = {
            "rps": statuses.total() / (counted * len(slices)),
            "created_ps": statuses["201"] / (counted * len(slices)),
            "statuses": dict(statuses),
            "slice_rps": [round(t.total() / counted, 1) for t in slices],
        }
    return result


def paced(port: int, path: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop load at ``rate``/s for ``seconds``: latency from each scheduled start."""
    n = int(rate * seconds)
    bodies = [signed() for _ in range(n)]
    local = threading.local()
    latencies: list[float] = [0.0] * n
    statuses: list[int] = [0] * n

    def send(i: int, scheduled: float) -> None:
        body, headers = bodies[i]
        for attempt in (1, 2):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed this idle keep-alive connection (gunicorn: after 2 s); a
                # client reconnects and sends again (same webhook-id: a repeat is safe), and
                # the time that takes is part of the latency
                conn.close()
                local.conn = None
                if attempt == 2:
                    raise
        resp.read()
        latencies[i] = time.monotonic() - scheduled
        statuses[i] = resp.status

    t0 = time.monotonic() + 0.2
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = []
        for i in range(n):
            scheduled = t0 + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, i, scheduled))
        for future in futures:
            future.result()  # a failed request fails the run instead of counting as 0 ms
    ms = sorted(x * 1000 for x in latencies)
    return {
        "events": n,
        "rate": rate,
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": ms[-1],
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50, help="events/s of the latency run")
    parser.add_argument("--paced-seconds", type=float, default=20,
                        help="seconds of the latency run, per server")
    parser.add_argument("--seconds", type=float, default=20,
                        help="seconds of closed-loop load per server (in slices)")
    parser.add_argument("--slice", type=float, default=2.0,
                        help="seconds of load on one server before it moves to the other")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per client")
    parser.add_argument("--per-connection", type=int, default=25,
                        help="requests per keep-alive connection (0: one for the whole run)")
    parser.add_argument("--web-workers", type=int, default=None,
                        help="SHAREWISE_WEB_WORKERS for both servers (default: the setting's)")
    parser.add_argument("--web-threads", type=int, default=None,
                        help="SHAREWISE_WEB_THREADS for both servers (default: the setting's)")
    args = parser.parse_args()

    path = "/webhooks/bench"
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="sharewise-bench-") as tmp:
        tenants = Path(tmp) / "tenants.toml"
        tenants.write_text(f'[tenants.bench]\nname = "Bench"\nwebhook_secret = "{SECRET}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        env.update(SHAREWISE_DATA_DIR=str(Path(tmp) / "var"), SHAREWISE_TENANTS=str(tenants))
        if args.web_workers:
            env["SHAREWISE_WEB_WORKERS"] = str(args.web_workers)
        if args.web_threads:
            env["SHAREWISE_WEB_THREADS"] = str(args.web_threads)
        ports = {"bare": _free_port(), "intake": _free_port()}
        log = Path(tmp) / "gunicorn.log"
        servers = [serve(sharewise_web_argv(ports["intake"]), ports["intake"], env, log)]
        try:
            web = cmdline(servers[0].pid)
            servers.append(serve(bare_argv(web, ports["bare"]), ports["bare"], env, log))
            results["argv"] = web
            check = paced(ports["intake"], path, rate=20, seconds=1)  # answers 201 at all?
            if set(check["statuses"]) != {"201"}:
                raise SystemExit(f"intake answered {check['statuses']}; log:\n"
                                 f"{log.read_text()[-3000:]}")
            results["web_processes"] = {"intake": len(children(servers[0].pid)),
                                        "bare": len(children(servers[1].pid))}
            results["throughput"] = interleaved(ports, path, args.seconds, args.slice,
                                                args.clients, args.threads, args.per_connection)
            results["paced"] = {name: paced(ports[name], path, args.rate, args.paced_seconds)
                                for name in ("bare", "intake")}
        finally:
            for server in servers:
                server.terminate()
                server.wait()
    results["load_after"] = os.getloadavg()[0]
    report(results, args)
    save_results(results, Path(__file__).with_name("results"))


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    t, p = results["throughput"], results["paced"]
    argv = results["argv"]
    threads = argv[argv.index("--threads") + 1] if "--threads" in argv else "?"
    procs = results["web_processes"]
    print(f"servers: `sharewise web` (gunicorn, {procs['intake']} web processes x {threads} "
          f"threads; bare: the same argv, {procs['bare']} processes), embedded SQLite; "
          f"{results['cpus']} CPUs, load average {results['load_before']:.2f} before, "
          f"{results['load_after']:.2f} after")
    print(f"latency, open loop {args.rate:g} events/s for {args.paced_seconds:g} s each "
          "(from scheduled start):")
    for name, label in (("bare", "bare Flask"), ("intake", "Sharewise intake")):
        r = p[name]
        print(f"  {label:<17} p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  max "
              f"{r['max_ms']:6.1f} ms  {r['statuses']}")
    met = "met" if p["intake"]["p99_ms"] < 100 else "NOT met"
    print(f"  target: Sharewise p99 < 100 ms -> {met}")
    print(f"throughput, closed loop, {args.clients} x {args.threads} connections, "
          f"{args.slice:g} s slices ABBA, {len(t['intake']['slice_rps'])} slices each:")
    for name, label in (("bare", "bare Flask"), ("intake", "Sharewise intake")):
        r = t[name]
        print(f"  {label:<17} {r['created_ps']:7.1f} events/s (201s)  {r['statuses']}  "
              f"slices {' '.join(f'{x:.0f}' for x in r['slice_rps'])}")
    ratio = t["intake"]["created_ps"] / t["bare"]["created_ps"]
    results["ratio"] = ratio
    met = "met" if t["intake"]["created_ps"] >= 150 else "NOT met"
    print(f"  target: Sharewise >= 150 events/s -> {met}; ratio to bare {ratio:.3f} "
          "(information only)")
    if t["late"]:
        print(f"  note: {t['late']} client thread(s) began a slice after its warm-up")


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
