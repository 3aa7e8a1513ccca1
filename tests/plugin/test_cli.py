"""``sharewise serve`` and ``sharewise demo`` as a newcomer runs them: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
import psutil
import pypdfium2
import pytest

from tests import serving
from tests.serving import SHAREWISE
from tests.smtp import free_port


class Served(serving.Served):
    """``sharewise serve --port`` with one web worker and one task thread, as a newcomer
    starts it: no tenants file yet (``serve`` writes the demo one)."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        port = free_port()
        super().__init__(tmp_path, port=port, args=["--port", str(port)], env={
            "SHAREWISE_WEB_WORKERS": "1", "SHAREWISE_WORKER_CONCURRENCY": "1", **env})

    def tree(self) -> list[int]:
        """serve and every process below it."""
        root = psutil.Process(self.proc.pid)
        return [root.pid, *(p.pid for p in root.children(recursive=True))]

    def child_pids(self) -> dict[str, int]:
        return {m[0]: int(m[1]) for m in re.findall(r"(\w+) pid (\d+)", self.output())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    try:
        s.wait_ready(timeout=30)
        yield s
    finally:
        # every process below serve (its children run in process groups of their own, so a
        # killed serve would leave them behind): collected first, killed after serve
        tree = s.tree()[1:] if s.proc.poll() is None else []
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        for pid in [*tree, *s.child_pids().values()]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_serve_demo_pdf_duplicates_and_clean_stop(served, tmp_path):
    demo = subprocess.run([SHAREWISE, "demo"], cwd=served.cwd, env=served.env,
                          capture_output=True, text=True, timeout=30)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "HTTP 201" in demo.stdout
    link = re.search(r"Practitioner link: (\S+)", demo.stdout)[1]
    assert link.startswith(served.base + "/form/")
    pdf_url = re.search(r'"form_pdf_url": "([^"]+)"', demo.stdout)[1]
    resp = httpx.get(pdf_url, timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
    doc = pypdfium2.PdfDocument(resp.content)
    assert len(doc) >= 1
    doc.close()
    assert httpx.get(link, timeout=10).status_code == 200
    status_url = re.search(r"curl (\S+)", demo.stdout)[1]
    assert httpx.get(status_url, timeout=10).json()["status"] == "awaiting_completion"
    assert (tmp_path / "var" / "tenants.toml").exists()

    # concurrent duplicates against the real server: one 201, the rest 200
    from sharewise.plugin.demo import sample_event, signed_request
    from sharewise.plugin.tenants import load_tenants

    secret = load_tenants(tmp_path / "var" / "tenants.toml")["demo"].webhook_secrets[0]
    event = sample_event(request_id="REQ-LIVE-RACE")
    deliveries = [signed_request(secret, event, f"msg_live_{i}") for i in range(6)]
    codes: list[int] = []
    barrier = threading.Barrier(len(deliveries))

    def post(body, headers):
        barrier.wait()
        codes.append(httpx.post(f"{served.base}/webhooks/demo", content=body, headers=headers,
                                timeout=30).status_code)

    threads = [threading.Thread(target=post, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [200] * 5 + [201]

    # garbage the real server must answer without a 500
    # 13 MB announced, 100 bytes sent: refused with 413 at once, without waiting for the body
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/demo HTTP/1.1\r\nHost: x\r\nContent-Length: 13000000\r\n"
                     b"Content-Type: application/json\r\n\r\n" + b"x" * 100)
        assert sock.recv(200).startswith(b"HTTP/1.1 413 ")
    r = httpx.post(f"{served.base}/webhooks/demo", content=b"{}", timeout=10)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"

    children = served.child_pids()
    assert set(children) == {"web", "worker"}  # beat runs inside the worker
    tree = served.tree()
    # the documented process model (README): the supervisor, gunicorn's master and its
    # WEB_WORKERS workers, one Celery worker (beat and tasks in threads); no upload, no reader
    assert len(tree) == 3 + 1, [psutil.Process(p).cmdline()[:4] for p in tree]
    assert served.stop() == 0
    time.sleep(0.5)
    assert not [pid for pid in tree if _alive(pid)]
    log = served.output()
    assert "Traceback" not in log and "Zoë" not in log
    # every line of the service's processes is one JSON object (aside from the supervisor's
    # own "sharewise: ..." console lines, and Celery's "worker: Warm shutdown" notice, which
    # it prints rather than logs); the page's access line has its parts as fields
    lines = [line for line in log.splitlines()
             if line and not line.startswith(("sharewise: ", "worker: Warm shutdown"))]
    assert not [line for line in lines if not line.startswith("{")], log
    entries = [json.loads(line) for line in lines]
    assert {"web", "worker"} <= {e["logger"].split(".")[0].replace("gunicorn", "web")
                                 .replace("celery", "worker") for e in entries}
    assert {"method": "GET", "path": "/form/<token>", "status": "200"}.items() <= \
        next(e for e in entries if e.get("path") == "/form/<token>").items()
    token = link.rsplit("/", 1)[1]
    assert token not in log  # a link token is a credential: never logged


def test_serve_starts_a_killed_child_again_and_stops_only_on_a_signal(served):
    children = served.child_pids()
    os.kill(children["worker"], signal.SIGKILL)
    line = f"worker (pid {children['worker']}) exited with code -9 (SIGKILL)"

    def restarted() -> int | None:
        found = re.search(r"worker started again \(pid (\d+)\)", served.output())
        return int(found[1]) if found else None

    deadline = time.monotonic() + 20
    while restarted() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert line in served.output() and restarted(), served.output()
    assert served.proc.poll() is None and _alive(restarted())  # still serving
    assert _alive(children["web"])
    assert httpx.get(f"{served.base}/healthz", timeout=5).status_code == 200
    tree = served.tree()
    assert served.stop() == 0
    time.sleep(0.5)
    assert not [pid for pid in tree if _alive(pid)]


def test_serve_says_the_port_is_in_use_before_claiming_to_serve(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        env["SHAREWISE_DATA_DIR"] = str(tmp_path / "var")
        done = subprocess.run([SHAREWISE, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"port {port} is in use" in done.stderr
    assert "serving on" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_demo_without_a_server_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    env["SHAREWISE_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([SHAREWISE, "demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0 and "sharewise serve" in done.stderr


# ------------------------------------------------------------------ settings, cwd, quiet logs


def _env(**values: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    env.update({f"SHAREWISE_{k}": str(v) for k, v in values.items()})
    return env


def _run(args: list[str], cwd: Path, **values: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHAREWISE, *args], cwd=cwd, env=_env(**values), capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args,key,value,message", [
    (["serve"], "PORT", "abc", "SHAREWISE_PORT must be an integer from 1 to 65535, got 'abc'"),
    (["demo"], "MIGRATE_ON_START", "maybe",
     "SHAREWISE_MIGRATE_ON_START must be true or false (or 1/0, yes/no, on/off), got 'maybe'"),
    (["db", "upgrade"], "DELIVERY_JITTER", "2",
     "SHAREWISE_DELIVERY_JITTER must be a fraction from 0 to 1, got '2'"),
    (["worker"], "LOG_LEVEL", "loud",
     "SHAREWISE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'"),
    (["links", "SR-1"], "BASE_URL", "ftp://x",
     "SHAREWISE_BASE_URL must be an http:// or https:// URL, got 'ftp://x'"),
    (["settings"], "WEB_WORKERS", "0",
     "SHAREWISE_WEB_WORKERS must be an integer of at least 1, got '0'"),
])
def test_a_bad_setting_stops_every_command_with_one_line(tmp_path, args, key, value, message):
    done = _run(args, tmp_path, **{key: value})
    assert done.returncode == 2
    assert done.stderr == f"sharewise: {message}\n" and done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_is_named_with_its_password_masked(tmp_path):
    url = "postgresql+psycopg://sharewise:s3cret-pw@127.0.0.1:1/sharewise"
    for args in (["db", "upgrade"], ["deliveries", "list"]):
        done = _run(args, tmp_path, DATA_DIR=tmp_path, DATABASE_URL=url)
        assert done.returncode == 1, args
        [line] = done.stderr.splitlines()
        assert line.startswith("sharewise: cannot reach the database "
                               "postgresql+psycopg://sharewise:***@127.0.0.1:1/sharewise: ")
        assert "refused" in line.lower()
        assert "s3cret" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_broker_is_named_with_its_password_masked(tmp_path):
    done = _run(["worker"], tmp_path, DATA_DIR=tmp_path / "var",
                BROKER_URL="redis://:s3cret-pw@127.0.0.1:1/0")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("sharewise: cannot reach the broker redis://:***@127.0.0.1:1/0: ")
    assert "s3cret" not in done.stdout + done.stderr


def test_read_only_commands_create_nothing_where_they_run(tmp_path):
    done = {}
    for args in (["settings"], ["tenants", "add", "eastmoor"], ["demo"], ["links", "SR-1"],
                 ["deliveries", "list"], ["reminders", "scan"]):
        done[args[0]] = _run(args, tmp_path)  # every default: DATA_DIR is ./var, here
        assert "Traceback" not in done[args[0]].stderr, (args, done[args[0]].stderr)
        assert list(tmp_path.iterdir()) == [], args
    assert done["settings"].returncode == done["tenants"].returncode == 0
    assert done["demo"].returncode == 1
    assert f"no tenants in {tmp_path / 'var' / 'tenants.toml'}" in done["demo"].stderr
    for name in ("links", "deliveries", "reminders"):
        assert done[name].returncode == 1 and done[name].stderr == (
            f"sharewise: no data directory {tmp_path / 'var'} (SHAREWISE_DATA_DIR); start "
            "`sharewise serve` or run `sharewise db upgrade` first\n")


def test_commands_work_from_any_directory(tmp_path):
    data, here, there = tmp_path / "data", tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    upgraded = _run(["db", "upgrade"], here, DATA_DIR=data)
    assert upgraded.returncode == 0 and "database is at head" in upgraded.stdout
    listed = _run(["deliveries", "list"], there, DATA_DIR=data)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("ID ") and "STATE" in listed.stdout
    assert list(here.iterdir()) == list(there.iterdir()) == []
    assert (data / "sharewise.db").is_file()


def test_serve_refuses_a_named_tenants_file_that_does_not_exist(tmp_path):
    done = _run(["serve"], tmp_path, DATA_DIR=tmp_path / "var", TENANTS=tmp_path / "t.toml",
                PORT=free_port())
    assert done.returncode == 1
    assert done.stderr == f"sharewise: no tenants file {tmp_path / 't.toml'} (SHAREWISE_TENANTS)\n"


ALEMBIC_CHATTER = ("Context impl", "Will assume", "Running upgrade", "alembic")


def test_migrations_print_no_alembic_chatter(tmp_path):
    done = _run(["db", "upgrade"], tmp_path, DATA_DIR=tmp_path / "a", LOG_LEVEL="INFO")
    assert done.returncode == 0
    assert done.stdout == "database is at head\n" and done.stderr == ""
    # a command whose app migrates on start, with logging on at INFO: an empty database file
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "sharewise.db").touch()
    done = _run(["deliveries", "list"], tmp_path, DATA_DIR=tmp_path / "b", LOG_LEVEL="INFO")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "database migrated from empty to " in out  # the one line of our own
    assert not [c for c in ALEMBIC_CHATTER if c in out], out


def _beat_output(tmp_path: Path, level: str, until: str, grace: float) -> str:
    data = tmp_path / level
    log = (tmp_path / f"beat-{level}.log").open("w+")
    proc = subprocess.Popen([SHAREWISE, "beat"], cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=_env(DATA_DIR=data, LOG_LEVEL=level, SWEEP_INTERVAL=0.3,
                                     DELIVERY_SWEEP_INTERVAL=0.3, REMINDER_SCAN_INTERVAL=0.3))
    try:
        deadline = time.monotonic() + 30
        while until not in Path(log.name).read_text():
            assert proc.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.1)
        time.sleep(grace)

        def sent() -> int:  # the sweeps beat sent (the log line comes before the row)
            try:
                with closing(sqlite3.connect(data / "broker.db")) as broker:
                    return broker.execute("SELECT count(*) FROM kombu_message").fetchone()[0]
            except sqlite3.OperationalError:  # no table before the first message
                return 0

        while not sent():
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
        log.close()
    return Path(log.name).read_text()


def test_beat_logs_its_routine_sends_at_debug(tmp_path):
    quiet = _beat_output(tmp_path, "INFO", "beat: Starting", grace=2)
    assert "Sending due task" not in quiet and "Traceback" not in quiet
    assert not [c for c in ALEMBIC_CHATTER if c in quiet], quiet
    verbose = _beat_output(tmp_path, "DEBUG", "Sending due task", grace=0)
    assert re.search(r'"level": "DEBUG", "logger": "celery\.beat", "message": "Scheduler: '
                     r'Sending due task', verbose)


def test_serve_logs_routine_sweeps_at_debug_and_the_root_warning_once(tmp_path):
    """Sweeps every 0.3 s for a few seconds: at INFO, no line per sweep; Celery's superuser
    warning is one line saying what to do (when the suite runs as root, as CI does)."""
    s = Served(tmp_path, SHAREWISE_SWEEP_INTERVAL="0.3", SHAREWISE_DELIVERY_SWEEP_INTERVAL="0.3",
               SHAREWISE_REMINDER_SCAN_INTERVAL="0.3")
    try:
        s.wait_ready(timeout=30)
        time.sleep(4)  # about a dozen rounds of each sweep
        metrics = httpx.get(f"{s.base}/metrics", timeout=10).text
    finally:
        s.stop()
    scans = re.search(r'sharewise_task_duration_seconds_count\{state="SUCCESS",'
                      r'task="tasks.reminders.scan"\} (\d+)', metrics)
    assert scans and int(scans[1]) >= 3, metrics  # the sweeps did run
    entries = [json.loads(line) for line in s.output().splitlines() if line.startswith("{")]
    routine = [e for e in entries if e["message"].startswith("Task tasks.")
               or e["message"].startswith("reminder scan at")]
    assert routine == [], routine[:3]
    messages = [e["message"] for e in entries]
    assert not [m for m in messages if "superuser privileges" in m]
    root_lines = [m for m in messages if "runs as root" in m]
    assert len(root_lines) == (1 if os.geteuid() == 0 else 0), root_lines
    assert all("unprivileged user" in m for m in root_lines)


@pytest.mark.parametrize("command", ["web", "worker", "beat"])
def test_scaled_out_processes_on_a_shared_database_need_the_keys(tmp_path, command):
    run = _run([command], tmp_path, DATA_DIR=tmp_path / "var",
               DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
               SECRET_KEYS="", ENCRYPTION_KEYS="")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "sharewise: SHAREWISE_SECRET_KEYS and SHAREWISE_ENCRYPTION_KEYS must be set when the "
        "database is shared: every machine must sign links and encrypt files with the same "
        "keys (`sharewise keys generate` makes one; docs/deployment.md)")
