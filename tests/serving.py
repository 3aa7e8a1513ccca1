"""A real ``sharewise serve`` for the tests: started as a subprocess on a free port with its own
data directory, waited for until it answers, stopped with SIGTERM, its output read back, and a
record's stored prefill unsealed (as the practitioner's PDF would carry it)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from sharewise.plugin.crypto import Keyring
from sharewise.plugin.sealed import unseal
from sharewise.plugin.settings import ensure_encryption_key
from tests.smtp import free_port

#: the ``sharewise`` command of the running venv
SHAREWISE = str(Path(sys.executable).with_name("sharewise"))


def wait_for_output(proc: subprocess.Popen, output: Callable[[], str], text: str,
                    timeout: float, what: str) -> None:
    """Until ``output()`` (what ``proc`` wrote so far) holds ``text``; fails, with the output,
    if ``proc`` exits first or it takes longer than ``timeout`` seconds (``what``: how the
    message names it)."""
    deadline = time.monotonic() + timeout
    while text not in output():
        assert proc.poll() is None, f"{what} exited:\n" + output()
        assert time.monotonic() < deadline, f"{what} did not come up:\n" + output()
        time.sleep(0.1)


class Served:
    """``sharewise serve`` in ``root`` (its working directory), data in ``root/var``.

    The environment is this process's without any ``SHAREWISE_*`` variable, then
    ``SHAREWISE_DATA_DIR``, ``SHAREWISE_PORT`` and ``SHAREWISE_BASE_URL`` (``base``), then
    ``env``. ``tenants``: the text of ``var/tenants.toml`` (none: ``serve`` writes its demo
    one). ``args``: given to ``serve`` after its name. Output (stdout and stderr) goes to
    ``root/serve.log``.
    """

    def __init__(self, root: Path, *, env: Mapping[str, str] | None = None,
                 tenants: str | None = None, args: Sequence[str] = (),
                 port: int | None = None) -> None:
        self.cwd = root
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = root / "var"
        if tenants is not None:
            self.data.mkdir(exist_ok=True)
            (self.data / "tenants.toml").write_text(tenants)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
        self.env.update(SHAREWISE_DATA_DIR=str(self.data), SHAREWISE_PORT=str(self.port),
                        SHAREWISE_BASE_URL=self.base, **(env or {}))
        self.log = open(root / "serve.log", "w+")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([SHAREWISE, "serve", *args], cwd=root, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """Everything ``serve`` and its children wrote so far (also after :meth:`stop`)."""
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until ``serve`` says it is serving and ``/healthz`` answers 200; fails (with the
        output) if it exits first or takes longer than ``timeout`` seconds."""
        wait_for_output(self.proc, self.output, "sharewise: serving on", timeout, "serve")
        assert httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; its exit code (-9 if killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        self.log.close()
        return code

    def prefill(self, record_id: str) -> tuple[dict[str, Any], str, int]:
        """A record's prefill (unsealed from the database), its hash and schema version."""
        with sqlite3.connect(self.data / "sharewise.db", timeout=30) as db:
            sealed, prefill_hash, version = db.execute(
                "SELECT prefill, prefill_hash, schema_version FROM records "
                "WHERE public_id = ?", (record_id,)).fetchone()
        keys = Keyring.from_text([ensure_encryption_key(self.data)])
        return unseal(keys, sealed, f"records.prefill:{record_id}"), prefill_hash, version


def venv_processes(venv: Path) -> list[Any]:
    """Live processes running a virtualenv's interpreter (a fresh install's serve, gunicorn,
    celery and their children): what a test that started them must see gone at the end."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline", "exe", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        words = [p.info["exe"] or "", *(p.info["cmdline"] or [])[:2]]
        if any(w.startswith(str(venv)) for w in words):
            found.append(p)
    return found


def venv_processes_left(venv: Path, timeout: float = 10) -> list[Any]:
    """:func:`venv_processes`, once there are none or after ``timeout`` seconds (processes
    just stopped may need a moment to be reaped): what is still left then."""
    deadline = time.monotonic() + timeout
    while (left := venv_processes(venv)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
