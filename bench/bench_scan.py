"""Reminder scan benchmark: scan time with 1,000,000 records of which 1,000 are due, vs 10,000.

Run: ``.venv/bin/python -m bench.bench_scan`` (``--sizes 10000,1000000 --due 1000 --runs 7
--backends sqlite,postgres``). PostgreSQL is used when 127.0.0.1:5432 answers (a throwaway
database per size, dropped at the end).

Data, per size N (bulk-inserted: ``executemany`` on SQLite, ``COPY`` on PostgreSQL, after the
real migrations): N records with 4 reminder rows each (the default policy), so 4N reminder
rows. ``--due`` open records have their "due now" step pending and due (their heads-up already
sent, their escalations pending in the future); of the others, 70 % are complete with every
reminder sent, skipped or cancelled, 30 % are open and due in the next 30 days (all 4 rows
pending in the future). One tenant, digest on, ``now`` a working day after 08:00.

Measured: :func:`plugin.reminders.services.scan` (the function the beat task and the CLI run)
plus its commit: it takes the lock, reads the due rows, claims them (1,000 UPDATEd rows) and
checks the tenant's digest. The claims are reset between runs (not timed); the first run of a
day, which also creates the managers' digests, is reported on its own. The broker hand-over
after the commit is not included (it is per claimed row, identical at any table size).

Also measured, in the same run on the same data: the scan's due-rows query alone (first batch
of 500, with its ``(state, due_at)`` index) and the baseline, the same query with the index
switched off (SQLite ``NOT INDEXED``; PostgreSQL ``enable_indexscan/bitmapscan = off``), i.e.
what finding the due rows costs when every row must be looked at.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text, update
from sqlalchemy.orm import sessionmaker

from sharewise.plugin.db import make_engine, upgrade
from sharewise.plugin.reminders.models import Digest, Reminder
from sharewise.plugin.reminders.services import ReminderSettings, scan

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday, after the 08:00 digest
STEPS = (("-2h", "practitioner", "due_soon", timedelta(hours=-2)),
         ("0", "practitioner", "due_now", timedelta(0)),
         ("+1wd", "manager", "overdue", timedelta(days=1)),
         ("+3wd", "manager", "overdue", timedelta(days=3)))
CHUNK = 50_000
RECORD_COLS = ("id", "public_id", "tenant", "request_id", "status", "urgency", "case_reference",
               "practitioner_ref", "practitioner_email", "manager_email", "requested_at",
               "due_at", "created_at", "updated_at", "completed_at", "prefill", "prefill_hash",
               "prefill_version", "missing")
REMINDER_COLS = ("id", "record_id", "step", "recipient", "kind", "address", "due_at", "state",
                 "attempts", "created_at", "sent_at")


@dataclass
class Tenant:
    slug: str = "bench"
    timezone: str = "Europe/London"
    policy: dict[str, Any] = field(default_factory=dict)


def sqlite_ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def generate(n: int, due: int, start: int):
    """Rows for records start..start+CHUNK (records, reminders) as tuples, deterministic."""
    records, reminders = [], []
    for i in range(start, min(start + CHUNK, n)):
        rid = i + 1
        manager = f"manager{i % 200}@team.example"
        practitioner = f"prac{i % 2000}@team.example"
        if i < due:
            status, due_at = "awaiting_completion", NOW - timedelta(minutes=1 + i % 50)
            states = ("sent", "pending", "pending", "pending")
        elif i % 10 < 7:
            status, due_at = "complete", NOW - timedelta(days=1 + i % 365, minutes=i % 600)
            states = ("sent", "sent", "skipped", "cancelled")
        else:
            status, due_at = "awaiting_completion", NOW + timedelta(hours=3, minutes=i % 43000)
            states = ("pending",) * 4
        requested = due_at - timedelta(days=1)
        records.append((rid, f"SR-B{rid:015d}", "bench", f"REQ-{rid}", status, "routine",
                        f"CASE-{rid}", "P-1", practitioner, manager, requested, due_at,
                        requested, requested, due_at if status == "complete" else None,
                        "{}", "", 1, "[]"))
        for k, ((step, to, kind, offset), state) in enumerate(zip(STEPS, states, strict=True)):
            reminders.append((rid * 4 + k, rid, step, to, kind,
                              practitioner if to == "practitioner" else manager,
                              due_at + offset, state, 1 if state == "sent" else 0, requested,
                              due_at + offset if state == "sent" else None))
    return records, reminders


def load_sqlite(engine: sa.Engine, n: int, due: int) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-400000")
        cur.execute("BEGIN")
        rq = (f"INSERT INTO records ({','.join(RECORD_COLS)}) "
              f"VALUES ({','.join('?' * len(RECORD_COLS))})")
        mq = (f"INSERT INTO reminders ({','.join(REMINDER_COLS)}) "
              f"VALUES ({','.join('?' * len(REMINDER_COLS))})")
        for start in range(0, n, CHUNK):
            records, reminders = generate(n, due, start)
            cur.executemany(rq, [tuple(sqlite_ts(v) if isinstance(v, datetime) else v for v in r)
                                 for r in records])
            cur.executemany(mq, [tuple(sqlite_ts(v) if isinstance(v, datetime) else v for v in r)
                                 for r in reminders])
        cur.execute("COMMIT")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("ANALYZE")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # start the runs with an empty WAL
    finally:
        raw.close()


def load_postgres(engine: sa.Engine, n: int, due: int) -> None:
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        with driver.cursor() as cur:
            for start in range(0, n, CHUNK):
                records, reminders = generate(n, due, start)
                with cur.copy(f"COPY records ({','.join(RECORD_COLS)}) FROM STDIN") as copy:
                    for r in records:
                        copy.write_row(r)
                with cur.copy(f"COPY reminders ({','.join(REMINDER_COLS)}) FROM STDIN") as copy:
                    for r in reminders:
                        copy.write_row(r)
        driver.commit()
        driver.autocommit = True
        with driver.cursor() as cur:
            cur.execute("VACUUM ANALYZE records")
            cur.execute("VACUUM ANALYZE reminders")
        driver.autocommit = False
    finally:
        raw.close()


def timed_scan(engine: sa.Engine, tenants: dict[str, Any]) -> tuple[float, int]:
    factory = sessionmaker(engine)
    t0 = time.perf_counter()
    with factory() as session:
        result = scan(session, now=NOW, tenants=tenants, settings=ReminderSettings(),
                      clock=NOW)
        session.commit()
    elapsed = time.perf_counter() - t0
    with engine.begin() as conn:  # give the claims back for the next run (not timed)
        conn.execute(update(Reminder).where(Reminder.claim.is_not(None))
                     .values(claim=None, lease_until=None))
    return elapsed, len(result.reminders)


def due_query(engine: sa.Engine, indexed: bool) -> float:
    """The scan's due-rows query alone, with or without its index."""
    if engine.dialect.name == "sqlite":
        hint = "" if indexed else " NOT INDEXED"
        sql = text(f"SELECT id, record_id FROM reminders{hint} WHERE state = 'pending' "
                   "AND due_at <= :now ORDER BY due_at, id LIMIT 500")
        now: Any = sqlite_ts(NOW)
        prelude: list[str] = []
    else:
        sql = text("SELECT id, record_id FROM reminders WHERE state = 'pending' "
                   "AND due_at <= :now ORDER BY due_at, id LIMIT 500")
        now = NOW
        prelude = [] if indexed else [
            "SET LOCAL enable_indexscan = off", "SET LOCAL enable_bitmapscan = off",
            "SET LOCAL enable_indexonlyscan = off"]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for p in prelude:
            conn.exec_driver_sql(p)
        conn.execute(sql, {"now": now}).all()
    return time.perf_counter() - t0


def pg_reachable() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 2})
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


def measure(backend: str, n: int, due: int, runs: int, workdir: Path) -> dict[str, Any]:
    admin = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'scan-{n}.db'}"
    else:
        name = f"sharewise_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        t0 = time.perf_counter()
        (load_sqlite if backend == "sqlite" else load_postgres)(engine, n, due)
        load_s = time.perf_counter() - t0
        tenants = {"bench": Tenant()}
        first, claimed = timed_scan(engine, tenants)  # creates today's digests
        with engine.begin() as conn:
            digests = conn.execute(sa.select(sa.func.count()).select_from(Digest)).scalar()
            conn.execute(update(Digest).values(state="sent"))
        times, base, query = [], [], []
        for _ in range(runs):
            t, c = timed_scan(engine, tenants)
            assert c == claimed == due, (c, claimed, due)
            times.append(t)
            query.append(due_query(engine, indexed=True))
            base.append(due_query(engine, indexed=False))
        return {"backend": backend, "records": n, "reminders": 4 * n, "due": due,
                "load_s": load_s, "first_ms": first * 1000, "digests": digests,
                "median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000,
                "query_ms": statistics.median(query) * 1000,
                "baseline_ms": statistics.median(base) * 1000}
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b for b in args.backends.split(",") if b]
    if "postgres" in backends and not pg_reachable():
        print("PostgreSQL at 127.0.0.1:5432 not reachable: skipped")
        backends.remove("postgres")
    rows = []
    with tempfile.TemporaryDirectory(prefix="sharewise-bench-scan-") as tmp:
        for backend in backends:
            for n in sizes:
                row = measure(backend, n, args.due, args.runs, Path(tmp))
                rows.append(row)
                print(f"  {backend:8} {n:>9,} records loaded in {row['load_s']:.1f} s", flush=True)
    print()
    print("| backend | records | reminder rows | due | scan median ms | scan max ms "
          "| first scan of the day ms (digests) | due query ms | baseline: due query without "
          "index ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['backend']} | {r['records']:,} | {r['reminders']:,} | {r['due']:,} "
              f"| {r['median_ms']:.1f} | {r['max_ms']:.1f} | {r['first_ms']:.1f} "
              f"({r['digests']}) | {r['query_ms']:.1f} | {r['baseline_ms']:.1f} |")
    print()
    for backend in backends:
        mine = [r for r in rows if r["backend"] == backend]
        if len(mine) >= 2:
            small, big = mine[0], mine[-1]
            print(f"{backend}: scan({big['records']:,}) / scan({small['records']:,}) = "
                  f"{big['median_ms'] / small['median_ms']:.2f} (target < 2); "
                  f"baseline ratio {big['baseline_ms'] / small['baseline_ms']:.1f}; "
                  f"scan at {big['records']:,}: {big['median_ms']:.1f} ms (target < 200 ms)")
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
