"""The intake benchmark's harness: it runs gunicorn as ``sharewise web`` does, its slices
alternate between the servers and are counted apart, its latency run keeps its schedule and
fails on a failed request, and every run's figures are kept, not only the last. (No timing
is asserted.)"""

from __future__ import annotations

import json
import os
import sys

import pytest

from bench.bench_intake import (
    BARE_APP,
    SECRET,
    SHAREWISE_APP,
    _free_port,
    bare_argv,
    children,
    cmdline,
    interleaved,
    paced,
    percentile,
    save_results,
    serve,
    sharewise_web_argv,
    slice_order,
)
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


def test_the_bare_server_runs_the_argv_of_sharewise_web_with_its_own_app_and_port():
    web = ["/v/bin/python", "-m", "gunicorn", "--bind", "127.0.0.1:8000", "--workers", "2",
           "--threads", "4", "--worker-class", "gthread", SHAREWISE_APP]
    assert bare_argv(web, 9001) == [*web[:4], "127.0.0.1:9001", *web[5:-1], BARE_APP]
    with pytest.raises(RuntimeError, match="unexpected command"):
        bare_argv([*web[:-1], "other:app"], 9001)


def test_sharewise_runs_as_sharewise_web_does_with_its_web_processes(tmp_path):
    """The Sharewise server is the ``sharewise web`` command itself: it has exec'd gunicorn
    (the argv the bare server copies) with ``WEB_WORKERS`` web processes under it."""
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(f'[tenants.bench]\nname = "Bench"\nwebhook_secret = "{SECRET}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    env.update(SHAREWISE_DATA_DIR=str(tmp_path / "var"), SHAREWISE_TENANTS=str(tenants),
               SHAREWISE_WEB_WORKERS="2", SHAREWISE_WEB_THREADS="2")
    port = _free_port()
    server = serve(sharewise_web_argv(port), port, env, tmp_path / "gunicorn.log")
    try:
        argv = cmdline(server.pid)
        assert "gunicorn" in argv and argv[-1] == SHAREWISE_APP
        assert argv[argv.index("--bind") + 1] == f"127.0.0.1:{port}"
        wait_until(lambda: len(children(server.pid)) == 2, timeout=30)
        got = paced(port, "/webhooks/bench", rate=10, seconds=0.5)
        assert got["statuses"] == {"201": 5}  # new records, stored
    finally:
        server.terminate()
        server.wait()


def test_slices_alternate_abba_so_a_steady_drift_weighs_on_both():
    assert slice_order(3) == ["bare", "intake", "intake", "bare", "bare", "intake"]
    order = slice_order(4, ("a", "b"))
    # each server has as many slices in the first half as in the second, at the same mean
    # position, so a steady drift of the machine weighs on both alike
    assert order[:4].count("a") == order[4:].count("a") == 2
    assert sum(n for n, x in enumerate(order) if x == "a") == sum(
        n for n, x in enumerate(order) if x == "b")


def test_percentile_is_nearest_rank():
    ms = [float(n) for n in range(1, 1001)]
    assert percentile(ms, 0.99) == 990.0
    assert percentile(ms, 0.5) == 500.0
    assert percentile([7.0], 0.99) == 7.0


@pytest.fixture
def bare_servers(tmp_path):
    """Two real gunicorn servers of the bare endpoint, started as the benchmark starts them."""
    ports = {"bare": _free_port(), "other": _free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    web = ["python", "-m", "gunicorn", "--bind", "x", "--workers", "1", "--threads", "2",
           "--worker-class", "gthread", SHAREWISE_APP]
    servers = [serve([sys.executable, *bare_argv(web, port)[1:]], port, env,
                     tmp_path / "gunicorn.log") for port in ports.values()]
    yield ports
    for server in servers:
        server.terminate()
        server.wait()


def test_interleaved_counts_each_servers_slices_apart(bare_servers):
    """Each server gets its own slices (an even number: two of 0.5 s here) and answers in
    every one of them."""
    got = interleaved(bare_servers, "/webhooks/x", seconds=1.0, slice_seconds=0.5, clients=1,
                      threads=2, per_connection=5, warm=0.1)
    for name in bare_servers:
        assert len(got[name]["slice_rps"]) == 2
        assert all(rate > 0 for rate in got[name]["slice_rps"])
        assert set(got[name]["statuses"]) == {"201"}
        assert got[name]["created_ps"] == got[name]["rps"] > 0


def test_paced_sends_every_scheduled_request(bare_servers):
    got = paced(bare_servers["bare"], "/webhooks/x", rate=20, seconds=1)
    assert got["events"] == 20 and got["statuses"] == {"201": 20}
    assert 0 < got["p50_ms"] <= got["p99_ms"] <= got["max_ms"]


def test_a_failed_request_fails_the_latency_run():
    """Nothing listens: the run raises instead of counting the failed requests as 0 ms."""
    with pytest.raises(ConnectionRefusedError):
        paced(_free_port(), "/webhooks/x", rate=20, seconds=0.2)


def test_a_client_thread_that_fails_fails_the_run():
    """A server that is not there: every client thread fails, and the run says so instead
    of dividing what the others counted by the whole time."""
    ports = {"bare": _free_port(), "intake": _free_port()}  # nothing listens on either
    with pytest.raises(RuntimeError, match="client thread"):
        interleaved(ports, "/webhooks/x", seconds=0.2, slice_seconds=0.1, clients=1,
                    threads=1, per_connection=0, warm=0.05)
