"""The wheel is complete and runs on its own.

* Every folder with an ``__init__.py`` under the design card's folders is a package listed in
  pyproject's ``[tool.setuptools] packages`` (and every listed one exists).
* A wheel built with ``python -m build --wheel`` (from a copy of the sources, so no ``build/``
  or ``*.egg-info`` is left in the checkout) holds every source file of those folders, only under
  ``sharewise/``; installed into a fresh venv outside the checkout, its ``sharewise serve``
  starts on the embedded defaults in an empty directory, answers ``/healthz``, takes
  ``sharewise demo`` (HTTP 201) and stops on Ctrl-C (SIGINT to its process group) leaving no
  process behind. Build + install take about 20 s (pip installs with ``--no-compile``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.serving import venv_processes, venv_processes_left
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("plugin", "forms", "tasks", "config")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _source_files() -> list[str]:
    """The files of the package folders a fresh clone would have (ignored files left out)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *PACKAGE_DIRS],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    return sorted(f for f in out if (ROOT / f).is_file() and "__pycache__" not in f)


def test_every_package_folder_is_listed_in_pyproject():
    setuptools_cfg = _pyproject()["tool"]["setuptools"]
    assert setuptools_cfg["package-dir"] == {f"sharewise.{d}": d for d in PACKAGE_DIRS}
    on_disk = {
        "sharewise." + ".".join(init.parent.relative_to(ROOT).parts)
        for d in PACKAGE_DIRS for init in (ROOT / d).rglob("__init__.py")
    }
    listed = set(setuptools_cfg["packages"])
    assert on_disk - listed == set(), "add to [tool.setuptools] packages in pyproject.toml"
    # folders of data files and migration scripts (no __init__.py) are listed too
    for name in listed - on_disk:
        top, _, rest = name.removeprefix("sharewise.").partition(".")
        folder = ROOT / top / Path(*rest.split("."))
        assert any(p.is_file() for p in folder.glob("*")), f"{name}: no such folder of files"


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", *_source_files()):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    built = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp / "dist"),
                  str(src)], timeout=300)
    # every folder that holds files is configured: setuptools has nothing to warn about
    assert "would be ignored" not in built.stdout + built.stderr
    (whl,) = (tmp / "dist").glob("sharewise-*.whl")
    return whl


def test_wheel_holds_every_source_file_under_sharewise(wheel):
    names = [n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n]
    assert all(n.startswith("sharewise/") for n in names), "nothing generic at the top level"
    assert sorted(n.removeprefix("sharewise/") for n in names) == _source_files()


@pytest.mark.timeout(600)
def test_installed_wheel_serves_the_demo_and_stops_cleanly(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    # dependencies from the package index (pip's cache); --no-compile: byte-compiling every
    # installed module would take most of the install time, and run-time compiles what it uses
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
          "--quiet", "--no-compile", str(wheel)], timeout=480)

    work = tmp_path / "empty"  # no config/, no tenants file: serve writes the demo one
    work.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHAREWISE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(SHAREWISE_DATA_DIR=str(tmp_path / "data"), SHAREWISE_PORT=str(port),
               SHAREWISE_WEB_WORKERS="1", SHAREWISE_WORKER_CONCURRENCY="1")
    sharewise = str(venv / "bin" / "sharewise")

    where = _run([str(venv / "bin" / "python"), "-c",
                  "import sharewise.plugin.cli as m, sharewise.config as c; "
                  "print(m.__file__); print(list(c.__path__)[0])"], cwd=work, env=env)
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout

    log = open(tmp_path / "serve.log", "w+")
    serve = subprocess.Popen([sharewise, "serve", "--port", str(port)], cwd=work, env=env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        log.flush()
        return (tmp_path / "serve.log").read_text()

    try:
        deadline = time.monotonic() + 90
        while True:
            assert serve.poll() is None, "serve exited:\n" + output()
            assert time.monotonic() < deadline, "serve did not come up:\n" + output()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

        demo = subprocess.run([sharewise, "demo"], cwd=work, env=env, capture_output=True,
                              text=True, timeout=60)
        assert demo.returncode == 0, demo.stdout + demo.stderr + output()
        assert "HTTP 201" in demo.stdout, demo.stdout
        assert (tmp_path / "data" / "tenants.toml").is_file()
        assert list(work.iterdir()) == [], "serve wrote into the working directory"

        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C in its terminal
        assert serve.wait(60) == 0, output()
        assert "sharewise: stopped" in output()
        # children reaped by now; allow the kernel a moment
        assert venv_processes_left(venv) == [], output()
    finally:
        for p in [*venv_processes(venv)]:  # only this test's processes: the tmp venv's python
            p.kill()
        log.close()
