"""The ``sharewise`` command (click). Each concern adds its sub-commands with one line:
``main.add_command(...)`` at the bottom of this file.

* ``serve``: the embedded default in one command: web (gunicorn, the app imported before its
  workers fork) and a Celery worker running beat and its tasks in threads,
  as child processes of a
  small supervisor (:mod:`sharewise.plugin.supervisor`) that imports nothing of the app;
  migrations first; a child that dies is logged and started again with back-off; only Ctrl-C /
  SIGTERM stops the service. A port already in use is said before anything claims to serve.
* ``web``, ``worker``, ``beat``: the same processes one by one, for a scaled-out setup.
* ``demo``: plays the host: signs and sends a sample ``share.requested`` to a running service.
* ``tenants add NAME``: prints a new tenant block with fresh secrets.
* ``db upgrade``: applies the migrations; ``settings``: prints the settings table.

The settings are built once, when the command starts (:func:`main`); a bad one, a database or
broker that cannot be reached, or a malformed tenants file stops the command with one line on
standard error and a non-zero exit, never a traceback. Only ``serve``, ``web``, ``worker``,
``beat`` and ``db upgrade`` create the data directory; the other commands work on what exists
(wherever they are run from: every path is absolute once the settings are built).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import click

from sharewise.plugin import settings
from sharewise.plugin.outbox.cli import deliveries
from sharewise.plugin.practitioner.cli import links_cmd
from sharewise.plugin.records.cli import audit
from sharewise.plugin.reminders.cli import reminders
from sharewise.plugin.settings import Settings, SettingsError, StartupError, unreachable
from sharewise.plugin.tenants import TenantsError, load_tenants, tenant_block, write_demo_tenants


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    click.echo(f"sharewise: {message}", err=True)
    ctx.exit(code)


class _Main(click.Group):
    """The command group: turns the expected start-up failures into one line each."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; bad settings exit 2, unreachable services and the like exit 1."""
        from kombu.exceptions import OperationalError as BrokerError
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            _fail(ctx, str(exc), 2)
        except (StartupError, TenantsError) as exc:
            _fail(ctx, str(exc), 1)
        except (OperationalError, InterfaceError) as exc:
            url = ctx.find_object(Settings).database_url  # type: ignore[union-attr]
            _fail(ctx, unreachable("database", url, exc, verb="use"), 1)
        except BrokerError as exc:
            url = ctx.find_object(Settings).broker_url  # type: ignore[union-attr]
            _fail(ctx, unreachable("broker", url, exc), 1)


def _set_env(**values: Any) -> None:
    for key, value in values.items():
        if value is not None:
            os.environ[f"{settings.ENV_PREFIX}_{key}"] = str(value)


def _check_database(s: Settings) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import InterfaceError, OperationalError

    from sharewise.plugin.db import make_engine

    engine = make_engine(s.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, InterfaceError) as exc:
        raise StartupError(unreachable("database", s.database_url, exc)) from None
    finally:
        engine.dispose()


def _check_broker(s: Settings) -> None:
    """One connection attempt to a network broker (the filesystem one is a directory)."""
    if s.broker_url.startswith(("sqla+sqlite://", "filesystem://", "memory://")):
        return
    from kombu import Connection
    from kombu.exceptions import OperationalError as BrokerError

    with Connection(s.broker_url, connect_timeout=5) as conn:
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=10)
        except BrokerError as exc:
            raise StartupError(unreachable("broker", s.broker_url, exc)) from None


def _migrate(s: Settings) -> None:
    from sharewise.plugin.app import migrate
    from sharewise.plugin.db import make_engine

    engine = make_engine(s.database_url)
    try:
        migrate(engine, s.database_url)
    finally:
        engine.dispose()


def _starting(ctx: click.Context, host: str | None = None, port: int | None = None, *,
              scaled_out: bool = False) -> Settings:
    """The settings of a process about to start (``serve``, ``web``, ``worker``, ``beat``):
    ``--host`` / ``--port`` applied, the data directory created, the database migrated here
    (once) and the broker reached; exported, so the processes started see the same values.

    ``scaled_out`` (``web``, ``worker``, ``beat``): on a shared database (not SQLite) the keys
    must be set, for a key generated into one machine's data directory would leave the
    others unable to open its links or read its files."""
    s: Settings = ctx.find_object(Settings)  # type: ignore[assignment]
    if host is not None or port is not None:
        _set_env(HOST=host, PORT=port)
        s = settings.build()
    if scaled_out and not s.database_url.startswith("sqlite"):
        missing = [f"{settings.ENV_PREFIX}_{k}" for k, v in (
            ("SECRET_KEYS", s.secret_keys), ("ENCRYPTION_KEYS", s.encryption_keys)) if not v]
        if missing:
            raise StartupError(
                f"{' and '.join(missing)} must be set when the database is shared: every "
                "machine must sign links and encrypt files with the same keys (`sharewise keys "
                "generate` makes one; docs/deployment.md)")
    s.data_dir.mkdir(parents=True, exist_ok=True)
    from sharewise.plugin.app import TENANT_CHECKS

    load_tenants(s.tenants, TENANT_CHECKS)  # a bad tenants file stops here, in one line
    if s.migrate_on_start:
        _migrate(s)
    else:
        _check_database(s)
    _check_broker(s)
    os.environ.update(s.environment())
    os.environ[f"{settings.ENV_PREFIX}_MIGRATE_ON_START"] = "false"  # done above, once
    s.metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(s.metrics_dir)  # plugin/metrics.py
    return s


def _web_argv(s: Settings) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{s.host}:{s.port}",
        "--workers", str(s.web_workers),
        "--threads", str(s.web_threads),
        "--worker-class", "gthread",
        "--preload",  # the app is imported once, then forked: its pages are shared
        "--graceful-timeout", "10",
        # gunicorn's control socket sits at one path per user: two services of one user
        # would fight over it, and Sharewise does not use it
        "--no-control-socket",
        # a worker is replaced after this many requests: its heap's growth goes with it
        "--max-requests", str(s.web_max_requests),
        "--max-requests-jitter", str(s.web_max_requests // 10),
        "--access-logfile", "-",
        "--logger-class", "sharewise.plugin.accesslog.RedactingLogger",
        "--config", "python:sharewise.plugin.gunicorn_conf",
        "--access-logformat", '"%(m)s %(U)s" %(s)s %(B)s %(M)sms',
        "sharewise.plugin.wsgi:app",
    ]


def _worker_argv(s: Settings, *, embedded: bool = False) -> list[str]:
    """The Celery worker. ``embedded`` (``serve``, one worker for the whole service): beat
    runs as a thread of it and its tasks run in threads too (they wait on the network: a
    post-back, an email), so it forks nothing; a scaled-out ``sharewise worker`` keeps Celery's
    prefork pool and a separate ``sharewise beat``."""
    argv = [
        sys.executable, "-m", "celery", "--quiet", "-A", "sharewise.tasks.worker", "worker",
        "--loglevel", s.log_level,
        "--concurrency", str(s.worker_concurrency),
        "--hostname", f"sharewise-{os.getpid()}@%h",
    ]
    if embedded:
        argv += ["--pool", "threads", "--beat-thread"]
    return argv


def _port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on ``host:port`` (bound as gunicorn binds)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return False


def _beat_argv(s: Settings) -> list[str]:
    return [
        sys.executable, "-m", "celery", "--quiet", "-A", "sharewise.tasks.worker", "beat",
        "--loglevel", s.log_level,
        "--schedule", str(s.data_dir / "celerybeat-schedule"),
    ]


def _loopback(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", ""):  # noqa: S104  # nosec B104 - reading the setting, not binding
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@click.group(cls=_Main)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Sharewise: information-sharing decision records for case-management systems."""
    ctx.obj = settings.build()


@main.command()
@click.option("--host", default=None, help="Listening address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Listening port (default 8000).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run web, worker and beat together on the embedded defaults."""
    s = _starting(ctx, host, port)
    if not s.tenants.exists():
        if s.tenants != s.data_dir / "tenants.toml":
            raise StartupError(f"no tenants file {s.tenants} (SHAREWISE_TENANTS)")
        write_demo_tenants(s.tenants, s.base_url)
        click.echo(f"sharewise: no tenants file found; created a demo one at {s.tenants}")
    if _port_in_use(s.host, s.port):
        raise StartupError(f"port {s.port} is in use on {s.host}: stop what holds it, or "
                           "choose another with --port or SHAREWISE_PORT")
    for stale in s.metrics_dir.glob("*.db"):  # the last run's samples (its processes are gone)
        stale.unlink()
    spec = {
        "children": [{"name": "web", "argv": _web_argv(s)},
                     {"name": "worker", "argv": _worker_argv(s, embedded=True)}],
        "health_url": f"http://{_loopback(s.host)}:{s.port}/healthz",
        "ready": f"serving on {s.base_url} ({{pids}}; data in {s.data_dir}; tenants "
                 f"{s.tenants}); Ctrl-C stops",
    }
    # glibc gives every thread that allocates a malloc arena of its own (up to eight per core);
    # a threaded web worker then keeps memory it freed in several arenas. Two are enough here.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    sys.stdout.flush()
    argv = [sys.executable, "-m", "sharewise.plugin.supervisor", json.dumps(spec)]
    os.execv(argv[0], argv)  # noqa: S606 (a small supervisor replaces this process)


@main.command()
@click.option("--host", default=None, help="Listening address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Listening port (default 8000).")
@click.pass_context
def web(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the web app under gunicorn."""
    argv = _web_argv(_starting(ctx, host, port, scaled_out=True))
    os.execv(argv[0], argv)  # noqa: S606 (replace this process; argv is ours)


@main.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run a Celery worker."""
    argv = _worker_argv(_starting(ctx, scaled_out=True))
    os.execv(argv[0], argv)  # noqa: S606 (replace this process; argv is ours)


@main.command()
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run Celery beat (one per installation)."""
    argv = _beat_argv(_starting(ctx, scaled_out=True))
    os.execv(argv[0], argv)  # noqa: S606 (replace this process; argv is ours)


@main.command()
@click.option("--url", default=None, help="Base URL of the running service (default BASE_URL).")
@click.option("--tenant", default=None, help="Tenant slug (default: the first in the file).")
@click.pass_context
def demo(ctx: click.Context, url: str | None, tenant: str | None) -> None:
    """Play the host: sign and send a sample share.requested, print the practitioner link."""
    import httpx

    from sharewise.plugin.demo import sample_event, signed_request

    s: Settings = ctx.find_object(Settings)  # type: ignore[assignment]
    path = s.tenants
    tenants = load_tenants(path)
    if not tenants:
        raise click.ClickException(f"no tenants in {path}; start `sharewise serve` first")
    slug = tenant or next(iter(tenants))
    if slug not in tenants:
        raise click.ClickException(f"no tenant {slug!r} in {path}")
    base = (url or s.base_url).rstrip("/")
    body, headers = signed_request(tenants[slug].webhook_secrets[0], sample_event())
    target = f"{base}/webhooks/{slug}"
    click.echo(f"POST {target}")
    try:
        resp = httpx.post(target, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"could not reach {target}: {exc}") from None
    click.echo(f"HTTP {resp.status_code}")
    try:
        answer = resp.json()
    except ValueError:
        answer = None
    click.echo(json.dumps(answer, indent=2) if answer is not None else resp.text)
    if resp.status_code not in (200, 201):
        sys.exit(1)
    click.echo(f"\nPractitioner link: {answer['form_url']}")
    click.echo(f"Check the status:  curl {answer['status_url']}")
    click.echo(f"See its reminder:  sharewise reminders scan --now {answer['due_at']}")
    click.echo("Post-back:         when the form is complete, see `sharewise deliveries list`")


@main.command("openapi")
@click.option("--guide", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Rewrite the event schemas between the markers in this file.")
def openapi_cmd(guide: Path | None) -> None:
    """Print the OpenAPI 3.1 document of the HTTP API (also served at /openapi.json)."""
    from sharewise.plugin.openapi import GUIDE_END, GUIDE_START, document, guide_schemas

    if guide is None:
        click.echo(json.dumps(document(), indent=2))
        return
    text = guide.read_text()
    start, end = text.find(GUIDE_START), text.find(GUIDE_END)
    if start < 0 or end < start:
        raise click.ClickException(f"{guide} has no schema markers")
    guide.write_text(text[: start + len(GUIDE_START)] + "\n\n" + guide_schemas() + "\n"
                     + text[end:])
    click.echo(f"updated the event schemas in {guide}")


@main.group()
def tenants() -> None:
    """Tenants (host systems)."""


@tenants.command("add")
@click.argument("slug")
@click.option("--name", default=None, help="Display name (default: the slug).")
def tenants_add(slug: str, name: str | None) -> None:
    """Print a new tenant block with fresh secrets (append it to the tenants file)."""
    try:
        click.echo(tenant_block(slug, name), nl=False)
    except TenantsError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def db() -> None:
    """Database."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the migrations (upgrade head)."""
    s: Settings = ctx.find_object(Settings)  # type: ignore[assignment]
    s.data_dir.mkdir(parents=True, exist_ok=True)
    _migrate(s)
    click.echo("database is at head")


README_START = "<!-- settings:start (generated by `sharewise settings --readme README.md`) -->"
README_END = "<!-- settings:end -->"


@main.command("settings")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Rewrite the settings table between the markers in this file.")
@click.option("--docs", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the whole configuration reference (docs/configuration.md) here.")
def settings_cmd(readme: Path | None, docs: Path | None) -> None:
    """Print every SHAREWISE_ setting with its default (Markdown table)."""
    if docs is not None:
        from sharewise.plugin.confdoc import reference

        docs.write_text(reference())
        click.echo(f"wrote the configuration reference to {docs}")
        if readme is None:
            return
    table = settings.markdown_table()
    if readme is None:
        click.echo(table)
        return
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise click.ClickException(f"{readme} has no settings markers")
    readme.write_text(text[: start + len(README_START)] + "\n" + table + "\n" + text[end:])
    click.echo(f"updated the settings table in {readme}")


@main.group("keys")
def keys() -> None:
    """Encryption keys (ENCRYPTION_KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new encryption key (put it first in SHAREWISE_ENCRYPTION_KEYS)."""
    from sharewise.plugin.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 100_000),
              help="Records re-encrypted per transaction.")
def keys_rotate(batch: int) -> None:
    """Encrypt everything stored again with the newest key (safe while the service runs)."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.rotation import rotate

    app = existing_app()
    with app.app_context():
        click.echo(rotate(app, batch).summary())


@main.command("purge")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000),
              help="Most records to purge in this run.")
def purge_cmd(dry_run: bool, limit: int) -> None:
    """Delete the PDFs and personal fields of finished records past their retention."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.retention import due_for_purge, purge

    app = existing_app()
    with app.app_context():
        due = due_for_purge(app, limit=limit) if dry_run else purge(app, limit=limit)
    for d in due:
        click.echo(f"{d.public_id}  {d.tenant}  host acknowledged {d.acknowledged_at:%Y-%m-%d}")
    verb = "would be purged" if dry_run else "purged"
    click.echo(f"{len(due)} record(s) {verb}")


@main.command("export")
@click.option("--subject-name", required=True, help="The person's name as the case system has it.")
@click.option("--date-of-birth", default=None, metavar="YYYY-MM-DD",
              help="The person's date of birth (as the case system sent it), if it had one.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="A folder to create for the export (it must not exist yet).")
def export_cmd(subject_name: str, date_of_birth: str | None, out: Path) -> None:
    """Write every record about one person, with its audit trail, to a new folder (a subject
    access request); free-text answers that may hold others' data are listed for review."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.subject_access import export_subject

    if out.exists():
        raise click.ClickException(f"{out} exists already: name a new folder")
    if date_of_birth is not None:
        try:
            date_of_birth = date.fromisoformat(date_of_birth.strip()).isoformat()
        except ValueError:
            raise click.BadParameter("use YYYY-MM-DD, as the case system sent it",
                                     param_hint="--date-of-birth") from None
    app = existing_app()
    with app.app_context():
        result = export_subject(app, subject_name, date_of_birth, out)
    click.echo(f"{len(result.records)} record(s), {result.files} file(s) written to {out}; "
               "review the free-text fields each record.json lists under third_party_review")


# Concerns register their sub-commands below, one line each.
main.add_command(reminders)
main.add_command(audit)
main.add_command(deliveries)
main.add_command(links_cmd)


if __name__ == "__main__":
    main()
