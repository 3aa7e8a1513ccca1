"""The README's walk-through, followed word for word in a fresh clone.

The current checkout's HEAD is cloned (``git clone``) into a temporary directory, so what is
tested is what a newcomer gets: commit what the README needs. The commands are not copied here:
they are the README's fenced code blocks marked with an HTML comment readers do not see,
``<!-- walkthrough: NAME -->``, read from the clone's README.md (tests/readme.py), run with
bash in the clone:

* ``background`` (step 1, ``make run``): started in a process group of its own, as a terminal
  runs it, with its output to a file; it must create ``.venv``, install, migrate, write the
  demo tenants file and print ``serving on``. The "Two commands" block is not marked: its
  ``make run`` is this one, and its ``make test`` would run this suite inside itself.
* ``second terminal`` (step 2): another bash, the block's lines as a script (``bash -e``);
  ``sharewise`` is not on its ``PATH`` until ``source .venv/bin/activate`` puts it there (every
  directory holding a ``sharewise`` is left out of the ``PATH`` the shells start with). It
  must print ``HTTP 201``, the JSON answer with exactly the keys the README's next sentence
  lists, and the practitioner link.
* Step 3 is a browser: the page behind the printed link must show what the README says
  (tests/plugin/test_readme_screenshots.py checks it in Chromium and draws the pictures).
* ``status`` (step 4): the ``curl`` line with the README's shortened link replaced by the
  ``status_url`` the demo printed; its answer must match the JSON the README shows on the
  ``#`` line (``...``: anything), and have the keys the practitioner's journey lists.
* ``upload`` (the practitioner's journey): both ``curl`` lines, with ``$UPLOAD_URL`` the
  printed ``upload_url`` and ``form.pdf`` the prefilled form downloaded from ``form_pdf_url``;
  each must answer JSON with exactly the keys the README lists under the block.

Port: the README's URLs say 127.0.0.1:8000, the default. When 8000 is free the walk-through
runs on it unchanged; when it is taken, both shells get ``SHAREWISE_PORT`` (a free port) in
their environment, as the README's step 1 tells a reader to do, and the commands stay as
written. The shells' environment is this process's without ``SHAREWISE_*``, ``PYTHON*``,
``VIRTUAL_ENV`` and make's own variables (a terminal's, not pytest's or ``make test``'s).

At the end, Ctrl-C: SIGINT to step 1's process group; ``serve`` must say ``stopped`` and leave no
process of the clone's venv behind (SIGKILL to the group after 60 s, also when a step failed).

Time: about 30 s on the project's machine (``make run``'s install takes 15 s of it, from
pip's cache, which ``make install`` in CI has filled).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.readme import demo_answer, key_shape, marked_blocks, matches, shown_json
from tests.serving import venv_processes_left, wait_for_output
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parent.parent
PORT = 8000  # the README's

pytestmark = pytest.mark.timeout(900)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _terminal_env(port: int) -> dict[str, str]:
    """A new terminal's environment: none of the suite's settings, no venv, no make."""
    drop = ("SHAREWISE_", "PYTHON", "VIRTUAL_ENV", "MAKE", "MFLAGS", "PIP_REQUIRE_VIRTUALENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not os.access(Path(d) / "sharewise", os.X_OK))
    env.pop("PS1", None)
    if port != PORT:
        env["SHAREWISE_PORT"] = str(port)
    return env


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float = 120
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _json_values(text: str) -> list[object]:
    """The JSON values printed one after the other (curl adds no newline)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        value, i = decoder.raw_decode(text, i)
        out.append(value)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def _readme_sentence(readme: str, pattern: str) -> str:
    m = re.search(pattern, readme, re.DOTALL)
    assert m, f"the README no longer says {pattern!r}"
    return m.group(1)


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """A fresh clone of HEAD; its ``.venv`` (220 MB) is removed afterwards, the rest is kept
    with pytest's temporary directories."""
    for tool in ("git", "make", "curl", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"the walk-through needs {tool}")
    target = tmp_path / "sharewise"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    yield target
    shutil.rmtree(target / ".venv", ignore_errors=True)


def test_the_readme_walkthrough_works_word_for_word(clone: Path) -> None:
    started = time.monotonic()
    readme = (clone / "README.md").read_text()
    blocks = marked_blocks(readme)
    assert list(blocks) == ["background", "second terminal", "status", "upload"], list(blocks)

    port = PORT if _port_free(PORT) else free_port()
    env = _terminal_env(port)
    assert _bash("command -v sharewise", clone, env).returncode != 0  # not found before step 2

    log = open(clone.parent / "make-run.log", "w+")  # noqa: SIM115 (closed below)
    serve = subprocess.Popen(["bash", "-c", blocks["background"]], cwd=clone, env=env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        log.flush()
        return Path(log.name).read_text(errors="replace")

    try:
        # step 1: make run
        wait_for_output(serve, output, "sharewise: serving on", 600, "make run")
        ready = time.monotonic() - started
        base = f"http://127.0.0.1:{port}"
        assert f"serving on {base} " in output()
        assert "created a demo one at" in output()  # "writes a demo one ... and says so"

        # step 2: another terminal
        second = _bash(blocks["second terminal"] + '\necho "sharewise is $(command -v sharewise)"',
                       clone, env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "command not found" not in second.stderr
        lines = second.stdout.splitlines()
        assert lines[-1] == f"sharewise is {clone}/.venv/bin/sharewise"
        answer = demo_answer(second.stdout)
        listed = _readme_sentence(readme, r"It prints `HTTP 201`, the JSON answer \(([^)]*)\)")
        assert list(answer) == re.findall(r"`(\w+)`", listed)
        assert f"Practitioner link: {answer['form_url']}" in lines  # "and the practitioner link"
        assert answer["status_url"].startswith(f"{base}/status/")

        # step 3: what the page shows (in words; the pictures are checked in Chromium)
        page = httpx.get(answer["form_url"], timeout=30)
        assert page.status_code == 200
        for shown in ("CASE-2026-0042", "Due by", "Download the form (PDF)",
                      "Fill in the form online", 'type="file"'):
            assert shown in page.text, shown

        # step 4: the status, with the link the demo printed
        script, expected = blocks["status"].split("\n# ", 1)
        assert re.search(r"http://127\.0\.0\.1:8000/status/\S+", script), script
        script = re.sub(r"http://127\.0\.0\.1:8000/status/\S+", answer["status_url"], script)
        status = _bash(script, clone, env)
        assert status.returncode == 0, status.stderr
        (got,) = _json_values(status.stdout)
        assert matches(shown_json(expected.strip()), got) == []
        journey = _readme_sentence(readme, r'`curl "\$STATUS_URL"` gives\s+`(\{.*?\})`')
        assert matches(key_shape(journey), got) == []
        assert got["record_id"] == answer["record_id"]

        # the practitioner's journey: curl uploads, JSON answers
        (clone / "form.pdf").write_bytes(httpx.get(answer["form_pdf_url"], timeout=30).content)
        uploads = _bash(blocks["upload"], clone, {**env, "UPLOAD_URL": answer["upload_url"]})
        assert uploads.returncode == 0, uploads.stderr
        said = _readme_sentence(readme, r"Both answer JSON\s+`(\{.*?\})`")
        answers = _json_values(uploads.stdout)
        assert len(answers) == blocks["upload"].count("curl ") == 2
        for got in answers:
            assert matches(key_shape(said), got) == [], got
            assert got["record_id"] == answer["record_id"] and got["missing"]
        assert [a["version"] for a in answers] == [1, 2]
    finally:
        # Ctrl-C in step 1's terminal
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGINT)
            try:
                serve.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()
        log.close()
    text = Path(log.name).read_text(errors="replace")
    assert "sharewise: stopped" in text, text[-3000:]
    left = venv_processes_left(clone / ".venv")
    assert left == [], [p.info["cmdline"] for p in left]
    print(f"\nwalk-through: serving after {ready:.1f} s, all done in "
          f"{time.monotonic() - started:.1f} s")
