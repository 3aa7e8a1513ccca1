"""The intake benchmark: its slices alternate between the servers and are counted apart, and
every run's figures are kept, not only the last."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bench.bench_intake import _free_port, _start, interleaved, save_results, slice_order
from tests.polling import wait_until


def test_each_run_is_appended_to_the_history(tmp_path):
    save_results({"ratio": 0.27, "intake_rps": 850.0}, tmp_path)
    save_results({"ratio": 0.31, "intake_rps": 990.0}, tmp_path)
    assert json.loads((tmp_path / "intake.json").read_text())["ratio"] == 0.31  # the latest
    lines = [json.loads(line) for line in
             (tmp_path / "intake-history.jsonl").read_text().splitlines()]
    assert [line["ratio"] for line in lines] == [0.27, 0.31]
    assert all(line["at"].endswith("+00:00") and "commit" in line for line in lines)
    assert len(lines[0]["commit"]) == 40  # the checkout's commit (tests run in the checkout)


def test_slices_alternate_abba_so_a_steady_drift_weighs_on_both():
    assert slice_order(3) == ["bare", "intake", "intake", "bare", "bare", "intake"]
    order = slice_order(4, ("a", "b"))
    # each server has as many slices in the first half as in the second, at the same mean
    # position, so a steady drift of the machine weighs on both alike
    assert order[:4].count("a") == order[4:].count("a") == 2
    assert sum(n for n, x in enumerate(order) if x == "a") == sum(
        n for n, x in enumerate(order) if x == "b")


def test_interleaved_counts_each_servers_slices_apart(tmp_path):
    """Two real gunicorn servers of the bare endpoint: each gets its own slices (an even
    number: two of 0.5 s here) and answers in every one of them."""
    ports = {"bare": _free_port(), "other": _free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    servers = [_start("bench.bench_intake:bare_app", port, env, 1, 2) for port in ports.values()]
    try:
        got = interleaved(ports, "/webhooks/x", seconds=1.0, slice_seconds=0.5, clients=1,
                          threads=2, per_connection=5, warm=0.1, fresh_for=())
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    for name in ports:
        assert len(got[name]["slice_rps"]) == 2
        assert all(rate > 0 for rate in got[name]["slice_rps"])
        assert set(got[name]["statuses"]) == {"201"}
        assert got[name]["rps"] > 0


def test_a_client_thread_that_fails_fails_the_run():
    """A server that is not there: every client thread fails, and the run says so instead
    of dividing what the others counted by the whole time."""
    ports = {"bare": _free_port(), "intake": _free_port()}  # nothing listens on either
    with pytest.raises(RuntimeError, match="client thread"):
        interleaved(ports, "/webhooks/x", seconds=0.2, slice_seconds=0.1, clients=1,
                    threads=1, per_connection=0, warm=0.05)


@pytest.mark.parametrize("writer", ["true", "false"])
def test_the_intake_server_keeps_one_writer_process_when_it_is_on(tmp_path, writer):
    """``gunicorn sharewise.plugin.wsgi:app`` as the benchmark (and ``sharewise web``) runs it: with
    two web processes, exactly one writer process runs under the server, and it stops with
    the server; none with INTAKE_WRITER off."""
    from bench.bench_intake import SECRET, writer_pids

    tenants = tmp_path / "tenants.toml"
    tenants.write_text(f'[tenants.bench]\nname = "Bench"\nwebhook_secret = "{SECRET}"\n')
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    env.update(SHAREWISE_DATA_DIR=str(tmp_path / "var"), SHAREWISE_TENANTS=str(tenants),
               SHAREWISE_PORT=str(port), SHAREWISE_INTAKE_WRITER=writer)
    server = _start("sharewise.plugin.wsgi:app", port, env, 2, 2)
    try:
        if writer == "true":
            # both web processes hold the writer lock file open: both have looked for it
            wait_until(lambda: _holding(tmp_path / "var", ".writer") == 2, timeout=30)
            wait_until(lambda: len(writer_pids(server.pid)) == 1, timeout=30)
        time.sleep(1)  # a second writer, were one started, would be running by now
        pids = writer_pids(server.pid)
        assert len(pids) == (1 if writer == "true" else 0)
    finally:
        server.terminate()
        server.wait()
    wait_until(lambda: not any(_running(pid) for pid in pids), timeout=15)


def _holding(directory: Path, suffix: str) -> int:
    """How many processes have a file of ``directory`` ending in ``suffix`` open."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}")
                     for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if any(link.startswith(str(directory)) and link.endswith(suffix) for link in links):
            count += 1
    return count


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
