"""The footprint benchmark's helpers: PSS read from smaps_rollup, the process-tree walk (with
a re-parented process found by its marker), command labels, the settle rule, the argvs of the
baselines and the summary's goals. (No timing or memory figure is asserted.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.footprint import (
    BARE_APP,
    BARE_CELERY,
    MARKER_ENV,
    MB,
    SHAREWISE_APP,
    Proc,
    Snapshot,
    bare_argvs,
    cpu_ticks,
    descendants,
    fd_kind,
    growth_lines,
    has_marker,
    is_settled,
    label,
    parse_rollup,
    parse_stat,
    snapshot,
    summary_rows,
    tree_pids,
)
from tests.polling import wait_until

ROLLUP = """\
55d0c8a00000-7ffd5b1f2000 ---p 00000000 00:00 0                          [rollup]
Rss:               30812 kB
Pss:               21374 kB
Pss_Dirty:         12040 kB
Pss_Anon:          12040 kB
Pss_File:           9334 kB
Pss_Shmem:             0 kB
Shared_Clean:      12800 kB
Private_Dirty:     12040 kB
Swap:                  0 kB
SwapPss:               0 kB
"""


def test_parse_rollup_reads_pss_and_rss_and_skips_the_header() -> None:
    got = parse_rollup(ROLLUP)
    assert got["Pss"] == 21374
    assert got["Rss"] == 30812
    assert got["Pss_Anon"] == 12040
    assert got["SwapPss"] == 0
    assert all(":" not in key and " " not in key for key in got)  # no header fragment


def test_parse_rollup_of_a_zombie_is_empty() -> None:
    assert parse_rollup("") == {}


def test_parse_rollup_of_this_process() -> None:
    got = parse_rollup(Path("/proc/self/smaps_rollup").read_text())
    assert 0 < got["Pss"] <= got["Rss"]


def test_parse_stat_with_spaces_and_parentheses_in_the_name() -> None:
    stat = "4242 (we ird) (name)) S 17 4200 4200 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 99"
    assert parse_stat(stat) == (17, 4200)
    assert cpu_ticks(stat) == 5 + 6 + 7 + 8


def test_parse_stat_and_cpu_ticks_of_this_process() -> None:
    text = Path("/proc/self/stat").read_text()
    assert parse_stat(text) == (os.getppid(), os.getpgid(0))
    assert cpu_ticks(text) >= 0


def test_descendants_breadth_first_and_only_below_the_root() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
    assert descendants(10, parents) == [10, 11, 12, 13]
    assert descendants(13, parents) == [13]
    assert descendants(99, parents) == []  # gone


def test_tree_of_this_process_has_its_children_and_grandchildren() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import subprocess, sys, time; "
                              "g = subprocess.Popen(['sleep', '30']); "
                              "print(g.pid, flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        pids, table = tree_pids(os.getpid())
        assert pids[0] == os.getpid()
        assert child.pid in pids and grandchild in pids
        assert table[grandchild][0] == child.pid
        s = snapshot(os.getpid())
        me = next(p for p in s.procs if p.pid == os.getpid())
        assert me.depth == 0 and me.pss_kb > 0 and me.fds > 0 and me.name
        depth = {p.pid: p.depth for p in s.procs}
        assert depth[grandchild] == depth[child.pid] + 1
    finally:
        child.kill()
        child.wait()
        subprocess.run(["kill", "-9", str(grandchild)], check=False)


def test_a_reparented_process_is_found_by_its_marker() -> None:
    marker = f"test-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, MARKER_ENV: marker}
    # the shell starts sleep in the background and exits: sleep leaves this process's tree
    out = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"], env=env,
                         capture_output=True, text=True, check=True)
    orphan = int(out.stdout)
    try:
        wait_until(lambda: orphan not in tree_pids(os.getpid())[0], timeout=10)
        assert has_marker(orphan, marker)
        assert not has_marker(orphan, marker + "-other")
        assert orphan in tree_pids(os.getpid(), marker)[0]
    finally:
        os.kill(orphan, 9)


@pytest.mark.parametrize(("argv", "expected"), [
    (["/v/bin/python", "/v/bin/sharewise", "serve"], "sharewise serve"),
    (["/v/bin/python", "-m", "gunicorn", "--bind", "127.0.0.1:1", "--workers", "2",
      "--access-logformat", '%(h)s "%(m)s"', "sharewise.plugin.wsgi:app"],
     "gunicorn sharewise.plugin.wsgi:app"),
    (["/v/bin/python", "-m", "celery", "-A", "sharewise.tasks.worker", "worker",
      "--loglevel", "INFO", "--concurrency", "2"], "celery -A sharewise.tasks.worker worker"),
    (["/v/bin/python", "-m", "gunicorn", "--workers", "2", "--preload", "--graceful-timeout",
      "10", "app:app"], "gunicorn --preload app:app"),
    (["/v/bin/python", "-m", "celery", "-A", "w", "worker", "--beat", "--schedule", "/x/s"],
     "celery -A w worker --beat"),
    (["redis-server", "--port=0"], "redis-server"),
    (["[celeryd: worker]"], "[celeryd: worker]"),
    (["/v/bin/python", "-m", "sup", '{"children": [{"name": "web", "argv": []}]}'],
     "sup {...}"),
])
def test_label(argv: list[str], expected: str) -> None:
    assert label(argv) == expected


def test_label_is_cut_to_its_width() -> None:
    assert label(["prog", "x" * 100], width=20) == "prog " + "x" * 12 + "..."


def _snap(pids: tuple[int, ...], pss: int) -> Snapshot:
    procs = [Proc(pid, 1, pid, 0, "p", pss // len(pids), 0, 3) for pid in pids]
    return Snapshot(procs)


def test_growth_lines_name_the_processes_that_moved() -> None:
    before = Snapshot([Proc(1, 0, 1, 0, "a", 10 * MB, 0, 3), Proc(2, 1, 1, 1, "b", 5 * MB, 0, 3),
                       Proc(3, 1, 1, 1, "c", 5 * MB, 0, 3)])
    after = Snapshot([Proc(1, 0, 1, 0, "a", 10 * MB + 10, 0, 3),
                      Proc(2, 1, 1, 1, "b", 7 * MB, 0, 3), Proc(4, 1, 1, 1, "d", 3 * MB, 0, 3)])
    assert growth_lines(before, after) == ["2 b: +2.0 MB", "4 d: new, 3.0 MB, 3 fds",
                                           "3 c: gone, was 5.0 MB, 3 fds"]
    more = Snapshot([Proc(1, 0, 1, 0, "a", 10 * MB, 0, 5, {"socket": 2, "x.db": 3})])
    less = Snapshot([Proc(1, 0, 1, 0, "a", 10 * MB, 0, 4, {"socket": 3, "x.db": 1})])
    assert growth_lines(more, less) == ["1 a: +0.0 MB, fds -1 (socket +1, x.db -2)"]


@pytest.mark.parametrize(("target", "kind"), [
    ("socket:[123]", "socket"), ("pipe:[9]", "pipe"), ("anon_inode:[eventpoll]", "eventpoll"),
    ("/tmp/a/var/sharewise.db-wal", "sharewise.db-wal"), ("/dev/null", "null"),
    ("/tmp/x (deleted)", "x"),
])
def test_fd_kind(target: str, kind: str) -> None:
    assert fd_kind(target) == kind


def test_snapshot_counts_descriptors_by_kind() -> None:
    with open(__file__, "rb"):
        me = next(p for p in snapshot(os.getpid()).procs if p.pid == os.getpid())
        assert me.fd_kinds.get(Path(__file__).name, 0) >= 1
        assert sum(me.fd_kinds.values()) == me.fds


def test_settled_needs_the_same_processes_and_steady_pss() -> None:
    assert not is_settled([_snap((1, 2), 1000)] * 2)  # too few samples
    assert is_settled([_snap((1, 2), 1000), _snap((1, 2), 1004), _snap((1, 2), 1002)])
    assert not is_settled([_snap((1, 2), 1000), _snap((1, 2), 1100), _snap((1, 2), 1100)])
    assert not is_settled([_snap((1, 2), 1000), _snap((1, 3), 1000), _snap((1, 3), 1000)])
    assert not is_settled([Snapshot([])] * 3)  # the tree has gone


def test_the_baselines_run_serves_argvs_with_the_bare_apps(tmp_path: Path) -> None:
    web, worker, broker = bare_argvs(tmp_path, 18765)
    assert BARE_APP in web and SHAREWISE_APP not in web
    assert web[web.index("--bind") + 1] == "127.0.0.1:18765"
    assert worker[worker.index("-A") + 1] == BARE_CELERY
    assert "broker_url" in broker


def test_the_bare_apps_are_made_on_first_use() -> None:
    import bench.footprint as footprint

    app = footprint.bare_app
    client = app.test_client()
    assert client.get("/").data == b"hello\n"
    assert client.post("/webhooks/x", data=b"abc").status_code == 201
    with pytest.raises(AttributeError):
        _ = footprint.no_such_thing


def test_summary_goals() -> None:
    def snap(pss_mb: float, count: int, fds: int) -> dict:
        return {"pss_kb": int(pss_mb * MB), "count": count, "fds": fds}

    results = {
        "baseline_rest": snap(100, 6, 60),
        "rest": snap(290, 10, 80),
        "used": snap(330, 10, 80),  # +13.8 %
        "backlog": {"events": 10, "events_per_s": 151.0, "statuses": {"201": 10},
                    "errors": 0, "db": {"rows": 10, "distinct": 10}},
        "bare_events_per_s": 900.0,
    }
    met = {row[0]: row[4] for row in summary_rows(results)}
    assert met == {"PSS at rest": True, "PSS after use": False, "processes after use": True,
                   "open fds after use": True, "backlog events/s": True,
                   "backlog recorded once": True}
    results["backlog"]["statuses"] = {"201": 9, "503": 1}
    results["used"] = snap(300, 12, 81)
    met = {row[0]: row[4] for row in summary_rows(results)}
    assert not met["backlog recorded once"]
    assert met["PSS after use"] and not met["processes after use"]
    assert not met["open fds after use"]
