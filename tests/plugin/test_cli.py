"""``sharewise serve`` and ``sharewise demo`` as a newcomer runs them: real processes, real HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pypdfium2
import pytest

SHAREWISE = str(Path(sys.executable).with_name("sharewise"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, tmp_path: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        self.env.update(SHAREWISE_DATA_DIR=str(tmp_path / "var"), SHAREWISE_PORT=str(self.port),
                        SHAREWISE_WEB_WORKERS="1", SHAREWISE_WORKER_CONCURRENCY="1")
        self.cwd = tmp_path  # no config/tenants.toml here: serve must create the demo tenants
        self.log = open(tmp_path / "serve.log", "w+")
        self.proc = subprocess.Popen([SHAREWISE, "serve", "--port", str(self.port)], cwd=self.cwd,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not come up:\n" + self.output())

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def child_pids(self) -> dict[str, int]:
        return {m[0]: int(m[1]) for m in re.findall(r"(\w+) pid (\d+)", self.output())}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


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
        s.wait_ready()
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        for pid in s.child_pids().values():
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
    assert set(children) == {"web", "worker", "beat"}
    assert served.stop() == 0
    assert not [n for n, pid in children.items() if _alive(pid)]
    log = served.output()
    assert "Traceback" not in log and "Zoë" not in log
    assert '"GET /form/<token>" 200' in log
    token = link.rsplit("/", 1)[1]
    assert token not in log  # a link token is a credential: never logged


def test_serve_reports_a_dead_child(served):
    children = served.child_pids()
    os.kill(children["worker"], signal.SIGKILL)
    assert served.proc.wait(20) == 1
    assert f"worker (pid {children['worker']}) exited" in served.output()
    time.sleep(0.5)
    assert not [n for n, pid in children.items() if _alive(pid)]


def test_demo_without_a_server_fails_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    env["SHAREWISE_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([SHAREWISE, "demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0 and "sharewise serve" in done.stderr
