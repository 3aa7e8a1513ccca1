"""docs/deployment.md and deploy/: the scaled-out setup, checked.

Without services (always run):

* ``deploy/Procfile``: every line is ``name: command``, each command a real ``sharewise``
  sub-command with options it accepts; the lines are ``web``, ``worker`` and ``beat``.
* The systemd units parse (``configparser``, as systemd's syntax allows), have ``[Unit]``,
  ``[Service]`` and ``[Install]``, read ``EnvironmentFile=/etc/sharewise/sharewise.env``, run the
  same command as the Procfile line of the same name, and are stopped with ``KillMode=mixed``;
  where ``systemd-analyze`` is installed, ``systemd-analyze verify`` finds nothing to say.
* ``deploy/sharewise.env.example`` names only real settings (plus the AWS variables boto3
  reads), means the same to systemd's ``EnvironmentFile=`` parser (ported below) and to a
  shell's ``set -a; . file``, and refuses to start until its keys are filled in.
* The guide names only real settings and real commands, and its two marked blocks
  (``<!-- deployment-test: setup -->`` and ``<!-- deployment-test: run -->``) hold only steps
  the end-to-end test knows how to follow.

With services (``SHAREWISE_TEST_SERVICES=1``): :func:`test_the_guide_on_this_machine` follows
"Try it on one machine" exactly, on this machine's PostgreSQL and Redis, in about 45 seconds.
It reads the two marked blocks from the guide, runs the setup block with bash (in a fresh
folder, with this venv's ``sharewise`` first on the ``PATH``), and follows the run block line
by line: loads ``sharewise.env`` with the block's own line (in bash), runs ``sharewise db
upgrade``, starts ``sharewise web``, two ``sharewise worker`` and one ``sharewise beat`` as the
block writes them, waits for ``/readyz`` and runs ``sharewise demo``. Only what must differ on
a shared CI machine is changed, and each of those strings must be in the guide: the database
name (a fresh database, made with SQLAlchemy as the guide's ``createdb`` would, dropped at the
end), the Redis key prefix (its keys deleted at the end) and the port. Besides, the tenant's
``callback_url`` points at a :class:`HostSimulator` instead of the built-in demo host, and
beat alone gets a 2-second delivery sweep so its first sweep comes within the test. The file
store is the trial's local folder (S3 is out of scope here).

Then one record goes through (``share.requested``, a complete upload, the post-back to the
host), both workers answer a Celery ping, beat's sweep reaches a worker, the web's
``/metrics`` shows a worker's counts, and no process made keys of its own. The guide's backup
follows (``pg_dump``, then ``rsync`` of the file store), every process gets SIGTERM (beat
first, web last) and must stop with all its children and status 0, and the guide's restore
(``rsync`` back, ``pg_restore`` into a new database, with the options the guide gives) must
give a database on which ``sharewise db upgrade`` and ``sharewise audit verify`` pass and from
which a restored ``sharewise web`` serves the final PDF the host received, byte for byte.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import httpx
import pytest

from sharewise.plugin import settings
from sharewise.plugin.cli import main
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "deployment.md"
DEPLOY = ROOT / "deploy"
PROCFILE = DEPLOY / "Procfile"
ENV_EXAMPLE = DEPLOY / "sharewise.env.example"
UNITS = ("sharewise-web.service", "sharewise-worker@.service", "sharewise-beat.service")
ENVIRONMENT_FILE = "/etc/sharewise/sharewise.env"
SHAREWISE = str(Path(sys.executable).with_name("sharewise"))
#: variables the env example may set that are not Sharewise's: boto3 reads them (s3:// store)
READ_BY_BOTO3 = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"})
#: the options of the guide's backup and restore commands, which the end-to-end test runs
PG_DUMP_OPTIONS = ["--format=custom"]
PG_RESTORE_OPTIONS = ["--single-transaction", "--no-owner"]
#: strings of the guide's trial that a shared CI machine must change (each must be there)
TRIAL_DATABASE, TRIAL_PREFIX, TRIAL_PORT = "sharewise_trial", "sharewise-trial:", "8000"


# ------------------------------------------------------------------------------ reading files


def guide_block(name: str) -> str:
    """The ``sh`` block after ``<!-- deployment-test: NAME -->`` in the guide, dedented."""
    text = GUIDE.read_text()
    marker = f"<!-- deployment-test: {name} -->"
    assert text.count(marker) == 1, f"the guide must mark exactly one block {marker}"
    found = re.match(r"\s*```sh\n(.*?)\n[ ]*```", text.split(marker, 1)[1], re.S)
    assert found, f"{marker} must be followed by a ```sh block"
    return textwrap.dedent(found.group(1))


def systemd_environment_file(text: str) -> dict[str, str]:
    """What systemd's ``EnvironmentFile=`` makes of ``text``: a port of its parser
    (``parse_env_file_internal`` in systemd's ``src/basic/env-file.c``). Comments only at the
    start of a line; a value may be in single quotes (literal) or double quotes (backslash
    escapes ``"``, ``\\``, backtick and ``$``); outside quotes a backslash escapes the next
    character (a newline: the line goes on) and trailing blanks are dropped."""
    out: dict[str, str] = {}
    state, key, value, key_blanks, value_blanks = "pre_key", "", "", 0, 0

    def emit() -> None:
        name = key[:len(key) - key_blanks] if key_blanks else key
        out[name] = value[:len(value) - value_blanks] if value_blanks else value

    for c in text:
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in " \t\n\r":
                state, key, key_blanks = "key", c, 0
        elif state == "key":
            if c in "\n\r":
                state = "pre_key"
            elif c == "=":
                state, value, value_blanks = "pre_value", "", 0
            else:
                key_blanks = key_blanks + 1 if c in " \t" else 0
                key += c
        elif state == "pre_value":
            if c in "\n\r":
                emit()
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "escape"
            elif c not in " \t":
                state, value = "value", value + c
        elif state == "value":
            if c in "\n\r":
                emit()
                state = "pre_key"
            elif c == "\\":
                state, value_blanks = "escape", 0
            else:
                value_blanks = value_blanks + 1 if c in " \t" else 0
                value += c
        elif state == "escape":
            state = "value"
            if c not in "\n\r":
                value += c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in '"\\`$':
                value += c
            elif c not in "\n\r":
                value += "\\" + c
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in "\n\r":
                state = "pre_key"
        elif state == "comment_escape":
            state = "pre_key" if c in "\n\r" else "comment"
    assert state in ("pre_key", "key", "comment", "pre_value", "value"), "unterminated value"
    if state in ("pre_value", "value"):
        emit()
    return out


def shell_environment_file(path: Path) -> dict[str, str]:
    """What ``set -a; . FILE; set +a`` in bash adds to an empty environment."""

    def run(script: str) -> dict[str, str]:
        done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script, "bash", str(path)],
                              env={"PATH": os.defpath}, capture_output=True, check=True)
        return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if item)

    before = run("exec env -0")
    after = run('set -a; . "$1"; set +a; exec env -0')
    return {k: v for k, v in after.items() if before.get(k) != v}


def unit(name: str) -> configparser.ConfigParser:
    """A systemd unit file, read as systemd's syntax allows (repeated keys, no interpolation)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string((DEPLOY / name).read_text(), source=name)
    return parser


def procfile() -> dict[str, str]:
    """``{name: command}`` of ``deploy/Procfile``."""
    entries: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip():
            continue
        found = re.fullmatch(r"([A-Za-z0-9_-]+):[ \t]*(\S.*)", line)
        assert found, f"not a Procfile line (name: command): {line!r}"
        assert found.group(1) not in entries, f"{found.group(1)} twice in the Procfile"
        entries[found.group(1)] = found.group(2)
    return entries


def check_sharewise_command(argv: list[str]) -> list[str]:
    """Fail unless click parses ``argv`` as ``sharewise SUBCOMMAND [...]`` (sub-groups and
    options included, nothing invoked); return the sub-command path, e.g. ``["db", "upgrade"]``."""
    assert Path(argv[0]).name == "sharewise", f"not a sharewise command: {argv}"
    command: click.Command = main
    path: list[str] = []
    try:
        ctx = main.make_context("sharewise", list(argv[1:]))
        while isinstance(command, click.Group):
            # click 8.2+ keeps the sub-command apart from ctx.args (click 9: all in args)
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            assert rest, f"{shlex.join(argv)}: no sub-command"
            name, sub, rest = command.resolve_command(ctx, rest)
            assert sub is not None, f"{shlex.join(argv)}: no such command"
            path.append(sub.name or str(name))
            command = sub
            ctx = sub.make_context(str(name), rest, parent=ctx)
    except click.ClickException as exc:
        raise AssertionError(f"{shlex.join(argv)}: {exc.format_message()}") from None
    return path


def setting_names() -> set[str]:
    """Every ``SHAREWISE_*`` variable the settings define."""
    return {d.env for d in settings.definitions()}


# ------------------------------------------------------------------------------ the run block


@dataclass
class Step:
    """One line of the guide's run block, as the end-to-end test follows it."""

    kind: str  # "load" (the env file), "run" (to the end), "start" (in the background), "wait"
    line: str
    argv: list[str] = field(default_factory=list)
    log: str | None = None
    url: str | None = None


LOAD = re.compile(r"set -a; \. (\./[\w.-]+); set \+a")
START = re.compile(r"(sharewise(?: [\w-]+)+)(?: > ([\w.-]+) 2>&1)? &")
RUN = re.compile(r"sharewise(?: [\w-]+)+")
WAIT = re.compile(r"until curl -fsS (\S+); do sleep 1; done")


def run_steps(block: str) -> list[Step]:
    """The steps of the run block; any other line fails (the guide may not add a step this
    test would silently skip)."""
    steps = []
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if found := LOAD.fullmatch(line):
            steps.append(Step("load", line, argv=[found.group(1)]))
        elif found := START.fullmatch(line):
            steps.append(Step("start", line, argv=found.group(1).split(), log=found.group(2)))
        elif RUN.fullmatch(line):
            steps.append(Step("run", line, argv=line.split()))
        elif found := WAIT.fullmatch(line):
            steps.append(Step("wait", line, url=found.group(1)))
        else:
            raise AssertionError(f"a step of the guide's run block this test cannot follow: {line}")
    return steps


# ------------------------------------------------------------------------------ without services


def test_procfile_runs_web_worker_and_beat():
    entries = procfile()
    assert set(entries) == {"web", "worker", "beat"}
    for name, command in entries.items():
        assert check_sharewise_command(shlex.split(command)) == [name], command


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit_parses_and_runs_the_procfile_command(name):
    parsed = unit(name)
    assert {"Unit", "Service", "Install"} <= set(parsed.sections())
    service = parsed["Service"]
    assert service["EnvironmentFile"] == ENVIRONMENT_FILE
    assert service["User"] == "sharewise" and service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > 0 and service["Restart"] == "on-failure"
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).is_absolute()
    process = check_sharewise_command(argv)[0]
    assert name.startswith(f"sharewise-{process}")
    assert shlex.split(procfile()[process])[1:] == argv[1:], "unit and Procfile must agree"
    if name.endswith("@.service"):  # a template: its instances are numbered
        assert "%i" in parsed["Unit"]["Description"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_finds_nothing_to_say(name, tmp_path):
    # systemd checks that ExecStart's program exists: this venv's sharewise stands in for
    # /opt/sharewise/venv/bin/sharewise; a template is checked as one of its instances
    argv = shlex.split(unit(name)["Service"]["ExecStart"])
    copy = tmp_path / name.replace("@.", "@1.")
    copy.write_text((DEPLOY / name).read_text().replace(argv[0], SHAREWISE))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    said = [line for line in (done.stdout + done.stderr).splitlines() if copy.name in line]
    assert done.returncode == 0 and not said, done.stdout + done.stderr


def test_env_example_sets_only_real_settings():
    text = ENV_EXAMPLE.read_text()
    active = set(systemd_environment_file(text))
    commented = set(re.findall(r"(?m)^#([A-Z][A-Z0-9_]*)=", text))
    allowed = setting_names() | READ_BY_BOTO3
    assert active and active <= allowed, sorted(active - allowed)
    assert commented <= allowed, sorted(commented - allowed)
    assert not active & READ_BY_BOTO3, "credentials stay commented out in the example"
    required = {"SHAREWISE_DATABASE_URL", "SHAREWISE_BROKER_URL", "SHAREWISE_STORAGE_URL",
                "SHAREWISE_ENCRYPTION_KEYS", "SHAREWISE_SECRET_KEYS", "SHAREWISE_BASE_URL",
                "SHAREWISE_TENANTS", "SHAREWISE_SMTP_URL", "SHAREWISE_MAIL_FROM",
                "SHAREWISE_METRICS_DIR", "SHAREWISE_LOG_FORMAT", "SHAREWISE_MIGRATE_ON_START"}
    assert required <= active, sorted(required - active)


def test_env_example_reads_the_same_to_systemd_and_to_a_shell(tmp_path):
    text = ENV_EXAMPLE.read_text()
    for line in text.splitlines():  # systemd would keep a trailing comment in the value
        assert line.startswith("#") or " #" not in line, f"a comment after a value: {line}"
    systemd = systemd_environment_file(text)
    assert shell_environment_file(ENV_EXAMPLE) == systemd
    # and so do the commented-out lines, once uncommented
    uncommented = tmp_path / "uncommented.env"
    uncommented.write_text(re.sub(r"(?m)^#([A-Z][A-Z0-9_]*=)", r"\1", text))
    opened = systemd_environment_file(uncommented.read_text())
    assert json.loads(opened["SHAREWISE_BROKER_TRANSPORT_OPTIONS"])  # JSON, quotes and all
    assert shell_environment_file(uncommented) == opened


def test_the_environment_file_parser_is_systemds():
    # the cases that matter in a settings file, as systemd reads them
    assert systemd_environment_file(
        "# comment\n; comment\nA=plain\nB = spaced  \nC='{\"k\": \"v\"}'\nD=\"x \\\"y\\\" \\n\"\n"
        "E=a\\\nb\nF=one # two\nG=\n") == {
        "A": "plain", "B": "spaced", "C": '{"k": "v"}', "D": 'x "y" \\n', "E": "ab",
        "F": "one # two", "G": ""}


def test_env_example_refuses_to_start_until_the_keys_are_set():
    environ = systemd_environment_file(ENV_EXAMPLE.read_text())
    with pytest.raises(settings.SettingsError, match="SHAREWISE_ENCRYPTION_KEYS"):
        settings.build(environ=environ)
    from sharewise.plugin.crypto import generate_key

    environ.update(SHAREWISE_ENCRYPTION_KEYS=generate_key(), SHAREWISE_SECRET_KEYS=generate_key())
    built = settings.build(environ=environ)  # every other value is a good one
    assert built.encryption_keys and built.secret_keys and not built.migrate_on_start
    assert built.database_url.startswith("postgresql+psycopg://")
    assert built.storage_url.startswith("s3://") and built.log_format == "json"


def guide_commands() -> list[list[str]]:
    """Every ``sharewise ...`` (or ``sw ...``, the guide's shell function) the guide's code
    names, as argv: at the start of a code span or line, after a shell operator or a
    ``.../bin/`` path, up to the end of its line or the next shell operator."""
    text = GUIDE.read_text().replace("\\\n", " ")
    code = re.findall(r"```sh\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
    found = []
    for snippet in code:
        for m in re.finditer(r"(?:^|[;&|(]\s*|/bin/)\s*(?:sharewise|sw)( [a-z][\w-]*[^;&|>)'\n]*)",
                             snippet, re.M):
            found.append(["sharewise", *shlex.split(m.group(1), comments=True)])
    return found


def test_the_guide_names_only_real_settings_and_commands():
    named = set(re.findall(r"\bSHAREWISE_[A-Z0-9_]*[A-Z0-9]", GUIDE.read_text()))
    assert named and named <= setting_names(), sorted(named - setting_names())
    commands = {tuple(check_sharewise_command(argv)) for argv in guide_commands()}
    assert {("web",), ("worker",), ("beat",), ("db", "upgrade"), ("audit", "verify"),
            ("keys", "generate"), ("links", "show"), ("tenants", "add")} <= commands, commands


def test_the_guides_trial_blocks_start_web_two_workers_and_beat():
    setup = guide_block("setup")
    for needed in (TRIAL_DATABASE, TRIAL_PREFIX, f":{TRIAL_PORT}"):
        assert needed in setup, f"the test changes {needed!r} in the setup block"
    steps = run_steps(guide_block("run"))
    assert [s.kind for s in steps][:2] == ["load", "run"] and steps[1].argv[1:] == ["db", "upgrade"]
    started = [check_sharewise_command(s.argv)[0] for s in steps if s.kind == "start"]
    assert sorted(started) == ["beat", "web", "worker", "worker"]
    waits = [s for s in steps if s.kind == "wait"]
    assert len(waits) == 1 and waits[0].url and waits[0].url.endswith(f":{TRIAL_PORT}/readyz")
    for step in steps:
        if step.kind == "run":
            check_sharewise_command(step.argv)
    env_file = re.search(r"cat > ([\w.-]+) <<'EOF'", setup)
    assert env_file and steps[0].argv == [f"./{env_file.group(1)}"]


def test_the_guides_backup_and_restore_use_the_options_the_test_runs():
    text = GUIDE.read_text().replace("\\\n", " ")
    dumps = re.findall(r"^\s*pg_dump (.*)$", text, re.M)
    restores = re.findall(r"^\s*pg_restore (.*)$", text, re.M)
    assert dumps and restores
    for line in dumps:
        assert [a for a in shlex.split(line) if a.startswith("--format")] == PG_DUMP_OPTIONS
    for line in restores:
        options = [a for a in shlex.split(line) if a.startswith("--") and "=" not in a]
        assert options == PG_RESTORE_OPTIONS, line


# ------------------------------------------------------------------------------ with services


@dataclass
class Process:
    """One started process: its kind (``web``, ``worker``, ``beat``), log file and handle."""

    kind: str
    log: str
    popen: subprocess.Popen[bytes]
    out: IO[bytes]


class Stack:
    """The processes the guide starts, in one folder, with one environment."""

    STOP_ORDER = ("beat", "worker", "web")  # the guide's: beat first, web last

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.procs: list[Process] = []

    def start(self, argv: list[str], log: str, extra: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        out = (self.cwd / log).open("wb")
        popen = subprocess.Popen([SHAREWISE, *argv[1:]], cwd=self.cwd,
                                 env={**self.env, **(extra or {})},
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(Process(argv[1], log, popen, out))
        return popen

    def run(self, argv: list[str]) -> str:
        """Run a command to its end; its standard output. It must exit 0."""
        return self.run_all(argv)[0]

    def run_all(self, *argvs: list[str]) -> list[str]:
        """Run commands side by side, each to its end; their standard outputs. Each must
        exit 0."""
        running = [(argv, subprocess.Popen([SHAREWISE, *argv[1:]], cwd=self.cwd, env=self.env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True)) for argv in argvs]
        outputs = []
        for argv, proc in running:
            try:
                out, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            assert proc.returncode == 0, f"{shlex.join(argv)}: {out}{err}"
            outputs.append(out)
        return outputs

    def of_kind(self, kind: str) -> list[subprocess.Popen[bytes]]:
        return [p.popen for p in self.procs if p.kind == kind]

    def logs(self, tail: int = 3000) -> str:
        """The end of every process's output (``tail`` characters each; 0: all of it)."""
        return "\n".join(f"==== {p.log}\n" + (self.cwd / p.log).read_text(errors="replace")[-tail:]
                         for p in self.procs)

    def alive(self) -> None:
        for p in self.procs:
            assert p.popen.poll() is None, (f"{p.log}: exited with {p.popen.returncode}\n"
                                            + self.logs())

    def wait_ready(self, url: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            try:
                resp = httpx.get(url, timeout=5)
                if resp.status_code == 200:
                    return resp.json()
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} never ready\n{self.logs()}"
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> list[str]:
        """SIGTERM to each main process only (beat first, web last), as systemd's
        ``KillMode=mixed`` does and as ``kill $(jobs -p)`` in the guide's trial does; whatever
        has not stopped, children included, after ``timeout`` gets SIGKILL. Returns what did
        not stop cleanly."""
        problems = []
        ordered = sorted(self.procs, key=lambda p: self.STOP_ORDER.index(p.kind))
        for p in ordered:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in ordered:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problems.append(f"{p.log}: still running {timeout} s after SIGTERM")
            children_deadline = time.monotonic() + 5
            while _group_alive(p.popen.pid) and time.monotonic() < children_deadline:
                time.sleep(0.1)
            if _group_alive(p.popen.pid):
                problems.append(f"{p.log}: processes left behind after SIGTERM")
                os.killpg(p.popen.pid, signal.SIGKILL)
            p.popen.wait()
            if p.popen.returncode != 0:
                problems.append(f"{p.log}: exit status {p.popen.returncode} after SIGTERM")
            p.out.close()
        self.procs = []
        return problems


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def databases() -> Iterator[list[str]]:
    """Names of throwaway databases made by the test (appended as it makes them), dropped
    at the end."""
    import sqlalchemy as sa

    from tests.conftest import PG_ADMIN_URL

    names: list[str] = []
    yield names
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of the test's own on the test machine's Redis; its keys deleted at the end."""
    import redis

    from tests.conftest import REDIS_URL

    prefix = f"sharewise-deploy-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _create_database(names: list[str], suffix: str = "") -> str:
    import sqlalchemy as sa

    from tests.conftest import PG_ADMIN_URL

    name = f"sharewise_deploy_{os.getpid()}_{uuid.uuid4().hex[:8]}{suffix}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    names.append(name)
    return name


def _libpq(url: str) -> str:
    """The libpq form of an SQLAlchemy URL (what pg_dump and pg_restore take)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _push_a_record_through(base: str, cwd: Path, env: dict[str, str], host: Any
                           ) -> tuple[str, dict[str, Any]]:
    """share.requested, then a complete upload: the record id and what the host received."""
    import psycopg

    from sharewise.forms.prefill import fill
    from sharewise.plugin.crypto import Keyring
    from sharewise.plugin.demo import sample_event, signed_request
    from sharewise.plugin.sealed import unseal
    from tests.plugin.uploads.journey import complete_answers

    slug, tenant = next(iter(tomllib.loads((cwd / "tenants.toml").read_text())["tenants"]
                             .items()))
    body, headers = signed_request(tenant["webhook_secret"], sample_event())
    made = httpx.post(f"{base}/webhooks/{slug}", content=body, headers=headers, timeout=60)
    assert made.status_code == 201, made.text
    record_id = made.json()["record_id"]
    with psycopg.connect(_libpq(env["SHAREWISE_DATABASE_URL"])) as db:
        prefill, prefill_hash, version = db.execute(
            "SELECT prefill, prefill_hash, schema_version FROM records WHERE public_id = %s",
            (record_id,)).fetchone()
    keys = Keyring.from_text(env["SHAREWISE_ENCRYPTION_KEYS"].split(","))
    values = unseal(keys, prefill, f"records.prefill:{record_id}")  # sealed at rest
    pdf = fill({**values, **complete_answers(version)}, record_id=record_id,
               prefill_hash=prefill_hash, version=version).pdf
    done = httpx.post(made.json()["upload_url"], content=pdf, timeout=60,
                      headers={"Content-Type": "application/pdf", "Accept": "application/json"})
    assert done.status_code == 200 and done.json()["status"] == "complete", done.text

    def completed() -> dict[str, Any] | None:
        return next((b for b in host.records.values() if b["type"] == "share.record_completed"
                     and b["data"]["record_id"] == record_id), None)

    assert host.wait_for(lambda _: completed() is not None, timeout=60), "no post-back"
    return record_id, completed()  # type: ignore[return-value]


def _worker_names(env: dict[str, str], expected: int, timeout: float = 20) -> set[str]:
    """The Celery workers that answer a ping on the installation's broker (asked again until
    ``expected`` answer, or ``timeout``)."""
    from celery import Celery

    app = Celery(broker=env["SHAREWISE_BROKER_URL"])
    app.conf.broker_transport_options = json.loads(
        env.get("SHAREWISE_BROKER_TRANSPORT_OPTIONS") or "{}")
    deadline = time.monotonic() + timeout
    try:
        while True:
            names = {name for reply in app.control.ping(timeout=2) for name in reply}
            if len(names) >= expected or time.monotonic() > deadline:
                return names
    finally:
        app.close()


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` with these ``labels`` (Prometheus text format)."""
    total = 0.0
    for found in re.finditer(rf"(?m)^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$", text):
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(found.group(2))
    return total


#: beat's first delivery sweep within the test's time (default 30 s); beat alone reads it
BEAT_FOR_THE_TEST = {"SHAREWISE_DELIVERY_SWEEP_INTERVAL": "2"}


def _follow_the_run_block(stack: Stack, block: str, base_env: dict[str, str]) -> None:
    """Each line of the guide's run block, as the guide says (see :func:`run_steps`)."""
    for step in run_steps(block):
        if step.kind == "load":  # the guide's own line, in bash
            done = subprocess.run(["bash", "-c", f"{step.line}\nexec env -0"], cwd=stack.cwd,
                                  env=base_env, capture_output=True, check=True)
            stack.env = dict(item.split("=", 1) for item in done.stdout.decode().split("\0")
                             if item)
        elif step.kind == "start":
            kind = step.argv[1]
            stack.start(step.argv, step.log or f"{kind}-{len(stack.procs)}.log",
                        BEAT_FOR_THE_TEST if kind == "beat" else None)
        elif step.kind == "wait":
            assert step.url and stack.wait_ready(step.url)["status"] == "ready"
        else:
            out = stack.run(step.argv)
            if step.argv[1] == "demo":
                assert "HTTP 201" in out, out


def _check_the_running_stack(stack: Stack, base: str) -> None:
    """Both workers answer, beat's sweeps reach a worker, /metrics adds up the web's and the
    workers' counts, and no process made keys of its own."""
    stack.alive()
    workers = stack.of_kind("worker")
    assert len(workers) == 2 and len(stack.of_kind("beat")) == 1
    assert {n.split("@")[0] for n in _worker_names(stack.env, 2)} == {
        f"sharewise-{p.pid}" for p in workers}, stack.logs()

    def scraped() -> str:
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200
        return metrics.text

    # counted in a worker, shown by the web process: they share METRICS_DIR
    assert _metric(scraped(), "sharewise_events_total") >= 2  # the demo's and ours
    assert _metric(scraped(), "sharewise_delivery_attempts_total") >= 1  # the post-back
    deadline = time.monotonic() + 30
    while _metric(scraped(), "sharewise_task_duration_seconds_count",  # sent by beat, run by
                  task="tasks.delivery.sweep", state="SUCCESS") < 1:  # a worker
        assert time.monotonic() < deadline, f"beat's sweep never ran\n{stack.logs()}"
        time.sleep(0.5)
    made = {"encryption_key", "secret_key"} & {
        p.name for p in (stack.cwd / stack.env["SHAREWISE_DATA_DIR"]).iterdir()}
    assert not made, f"a process made keys of its own: {made}"


def _backup(env: dict[str, str], files: Path, backup: Path) -> None:
    """The guide's backup: the database first, then the file store."""
    backup.mkdir()
    subprocess.run(["pg_dump", *PG_DUMP_OPTIONS, f"--file={backup / 'sharewise.dump'}",
                    _libpq(env["SHAREWISE_DATABASE_URL"])], check=True, timeout=60)
    subprocess.run(["rsync", "-a", f"{files}/", f"{backup / 'files'}/"], check=True, timeout=60)


def _restore(backup: Path, database_url: str, files: Path) -> None:
    """The guide's restore: the file store first, then the database (into an empty one)."""
    subprocess.run(["rsync", "-a", f"{backup / 'files'}/", f"{files}/"], check=True, timeout=60)
    subprocess.run(["pg_restore", *PG_RESTORE_OPTIONS, f"--dbname={_libpq(database_url)}",
                    str(backup / "sharewise.dump")], check=True, timeout=60)


@pytest.mark.services
@pytest.mark.timeout(180)
def test_the_guide_on_this_machine(tmp_path, databases, redis_prefix):
    from sharewise.plugin.outbox.hostsim import HostSimulator
    from tests.conftest import REDIS_URL

    assert shutil.which("pg_dump") and shutil.which("pg_restore") and shutil.which("rsync"), (
        "the guide's backup needs pg_dump, pg_restore (postgresql-client) and rsync")
    trial = tmp_path / "sharewise-trial"
    trial.mkdir()
    database, port = _create_database(databases), str(free_port())

    def here(block: str) -> str:  # what a shared CI machine must change, nothing else
        for old, new in ((TRIAL_DATABASE, database), (TRIAL_PREFIX, redis_prefix),
                         (f":{TRIAL_PORT}", f":{port}"), (f"PORT={TRIAL_PORT}", f"PORT={port}")):
            block = block.replace(old, new)
        return block

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREWISE_")}
    base_env["PATH"] = f"{Path(SHAREWISE).parent}{os.pathsep}{base_env.get('PATH', os.defpath)}"
    base_env["XDG_RUNTIME_DIR"] = str(tmp_path)  # gunicorn's control socket: here, not in ~
    subprocess.run(["bash", "-euo", "pipefail", "-c", here(guide_block("setup"))], cwd=trial,
                   env=base_env, check=True, timeout=120)
    tenants_file = trial / "tenants.toml"
    tenant = next(iter(tomllib.loads(tenants_file.read_text())["tenants"].values()))
    stack = Stack(trial, base_env)
    try:
        with HostSimulator(tenant["callback_secret"]) as host:
            tenants_file.write_text(tenants_file.read_text().replace(tenant["callback_url"],
                                                                     host.url))
            started = time.monotonic()
            _follow_the_run_block(stack, here(guide_block("run")), base_env)
            print(f"guide followed (database migrated, processes ready, demo sent) in "
                  f"{time.monotonic() - started:.1f} s")
            env, base = stack.env, f"http://127.0.0.1:{port}"
            assert env["SHAREWISE_DATABASE_URL"].endswith(f"/{database}")
            assert env["SHAREWISE_BROKER_URL"] == REDIS_URL  # where redis_prefix cleans up

            # one record all the way: intake (web), upload (web), post-back (a worker)
            record_id, posted = _push_a_record_through(base, trial, env, host)
            _check_the_running_stack(stack, base)
            _backup(env, trial / env["SHAREWISE_STORAGE_URL"], tmp_path / "backup")
    finally:
        problems = stack.stop()
    assert not problems, problems  # SIGTERM stopped every process and its children, status 0

    # restore into a new database and file store, with the keys kept apart (here: the env)
    restored_files, restored_port = tmp_path / "restored-files", str(free_port())
    restored_url = (env["SHAREWISE_DATABASE_URL"].rsplit("/", 1)[0]
                    + f"/{_create_database(databases, '_restored')}")
    _restore(tmp_path / "backup", restored_url, restored_files)
    check = Stack(trial, {**env, "SHAREWISE_DATABASE_URL": restored_url,
                          "SHAREWISE_STORAGE_URL": str(restored_files),
                          "SHAREWISE_PORT": restored_port,
                          "SHAREWISE_BASE_URL": f"http://127.0.0.1:{restored_port}"})
    try:
        assert "database is at head" in check.run(["sharewise", "db", "upgrade"])
        check.start(["sharewise", "web"], "restored-web.log")  # the guide's order: web, checks
        verified, links_json = check.run_all(  # both only read: side by side
            ["sharewise", "audit", "verify"], ["sharewise", "links", record_id, "--json"])
        assert re.search(r"\b2 audit trail\(s\).*every chain holds", verified), verified
        links = json.loads(links_json)
        assert links["status"] == "complete"
        check.wait_ready(f"http://127.0.0.1:{restored_port}/readyz")
        pdf = httpx.get(links["form_pdf_url"], timeout=30)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-"), pdf.text[:500]
        # the final record the host received, byte for byte, read back with the kept keys
        assert hashlib.sha256(pdf.content).hexdigest() == posted["data"]["pdf"]["sha256"]
        assert pdf.content == base64.b64decode(posted["data"]["pdf"]["base64"])
    finally:
        problems = check.stop()
    assert not problems, problems
