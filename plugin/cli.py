"""The ``sharewise`` command (click). Each concern adds its sub-commands with one line:
``main.add_command(...)`` at the bottom of this file.

* ``serve``: the embedded default in one command: web (gunicorn), a Celery worker and Celery
  beat as child processes; migrations first; Ctrl-C / SIGTERM stops them all; a child that dies
  is reported and the others are stopped.
* ``web``, ``worker``, ``beat``: the same processes one by one, for a scaled-out setup.
* ``demo``: plays the host: signs and sends a sample ``share.requested`` to a running service.
* ``tenants add NAME``: prints a new tenant block with fresh secrets.
* ``db upgrade``: applies the migrations; ``settings``: prints the settings table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from sharewise.plugin import settings
from sharewise.plugin.outbox.cli import deliveries
from sharewise.plugin.practitioner.cli import links_cmd
from sharewise.plugin.reminders.cli import reminders
from sharewise.plugin.tenants import (
    load_tenants,
    resolve_tenants_path,
    tenant_block,
    write_demo_tenants,
)


def _set_env(**values: Any) -> None:
    for key, value in values.items():
        if value is not None:
            os.environ[f"{settings.ENV_PREFIX}_{key}"] = str(value)


def _prepare(host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """Settings for the processes about to start, exported so children see the same ones."""
    _set_env(HOST=host, PORT=port)
    cfg = settings.load()
    tenants_path = resolve_tenants_path(cfg)
    if not tenants_path.exists():
        tenants_path = Path(cfg["DATA_DIR"]) / "tenants.toml"
        write_demo_tenants(tenants_path, cfg["BASE_URL"])
        click.echo(f"sharewise: no tenants file found; created a demo one at {tenants_path}")
    _set_env(DATA_DIR=cfg["DATA_DIR"], TENANTS=tenants_path, HOST=cfg["HOST"], PORT=cfg["PORT"])
    return settings.load()


def _migrate(cfg: dict[str, Any]) -> None:
    from sharewise.plugin.db import make_engine, upgrade

    engine = make_engine(cfg["DATABASE_URL"])
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _web_argv(cfg: dict[str, Any]) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{cfg['HOST']}:{cfg['PORT']}",
        "--workers", str(cfg["WEB_WORKERS"]),
        "--threads", str(cfg["WEB_THREADS"]),
        "--worker-class", "gthread",
        "--graceful-timeout", "10",
        "--access-logfile", "-",
        "--logger-class", "sharewise.plugin.accesslog.RedactingLogger",
        "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
        "sharewise.plugin.wsgi:app",
    ]


def _worker_argv(cfg: dict[str, Any]) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "sharewise.tasks.worker", "worker",
        "--loglevel", str(cfg["LOG_LEVEL"]),
        "--concurrency", str(cfg["WORKER_CONCURRENCY"]),
        "--hostname", f"sharewise-{os.getpid()}@%h",
    ]


def _beat_argv(cfg: dict[str, Any]) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "sharewise.tasks.worker", "beat",
        "--loglevel", str(cfg["LOG_LEVEL"]),
        "--schedule", str(Path(cfg["DATA_DIR"]) / "celerybeat-schedule"),
    ]


@click.group()
def main() -> None:
    """Sharewise: information-sharing decision records for case-management systems."""


@main.command()
@click.option("--host", default=None, help="Listening address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Listening port (default 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run web, worker and beat together on the embedded defaults."""
    cfg = _prepare(host, port)
    _migrate(cfg)
    os.environ[f"{settings.ENV_PREFIX}_MIGRATE_ON_START"] = "false"  # done above, once
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for name, argv in (("web", _web_argv(cfg)), ("worker", _worker_argv(cfg)),
                       ("beat", _beat_argv(cfg))):
        children[name] = subprocess.Popen(argv, start_new_session=True)
    pids = ", ".join(f"{name} pid {child.pid}" for name, child in children.items())
    click.echo(
        f"sharewise: serving on {cfg['BASE_URL']} ({pids}; data in {cfg['DATA_DIR']}; tenants "
        f"{os.environ[settings.ENV_PREFIX + '_TENANTS']}); Ctrl-C stops", err=True
    )
    code = 0
    while not stopping:
        for name, child in children.items():
            rc = child.poll()
            if rc is not None:
                click.echo(f"sharewise: {name} (pid {child.pid}) exited with code {rc}; "
                           "stopping the others", err=True)
                code = 1
                stopping = True
                break
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    click.echo("sharewise: stopped", err=True)
    sys.exit(code)


@main.command()
@click.option("--host", default=None, help="Listening address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Listening port (default 8000).")
def web(host: str | None, port: int | None) -> None:
    """Run the web app under gunicorn."""
    _set_env(HOST=host, PORT=port)
    cfg = settings.load()
    argv = _web_argv(cfg)
    os.execv(argv[0], argv)  # noqa: S606 (replace this process; argv is ours)


@main.command()
def worker() -> None:
    """Run a Celery worker."""
    argv = _worker_argv(settings.load())
    os.execv(argv[0], argv)  # noqa: S606 (replace this process; argv is ours)


@main.command()
def beat() -> None:
    """Run Celery beat (one per installation)."""
    argv = _beat_argv(settings.load())
    os.execv(argv[0], argv)  # noqa: S606 (replace this process; argv is ours)


@main.command()
@click.option("--url", default=None, help="Base URL of the running service (default BASE_URL).")
@click.option("--tenant", default=None, help="Tenant slug (default: the first in the file).")
def demo(url: str | None, tenant: str | None) -> None:
    """Play the host: sign and send a sample share.requested, print the practitioner link."""
    import httpx

    from sharewise.plugin.demo import sample_event, signed_request

    cfg = settings.load()
    path = resolve_tenants_path(cfg)
    tenants = load_tenants(path)
    if not tenants:
        raise click.ClickException(f"no tenants in {path}; start `sharewise serve` first")
    slug = tenant or next(iter(tenants))
    if slug not in tenants:
        raise click.ClickException(f"no tenant {slug!r} in {path}")
    base = (url or cfg["BASE_URL"]).rstrip("/")
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


@main.group()
def tenants() -> None:
    """Tenants (host systems)."""


@tenants.command("add")
@click.argument("slug")
@click.option("--name", default=None, help="Display name (default: the slug).")
def tenants_add(slug: str, name: str | None) -> None:
    """Print a new tenant block with fresh secrets (append it to the tenants file)."""
    from sharewise.plugin.tenants import TenantsError

    try:
        click.echo(tenant_block(slug, name), nl=False)
    except TenantsError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def db() -> None:
    """Database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (upgrade head)."""
    cfg = settings.load()
    _migrate(cfg)
    click.echo("database is at head")


README_START = "<!-- settings:start (generated by `sharewise settings --readme README.md`) -->"
README_END = "<!-- settings:end -->"


@main.command("settings")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Rewrite the settings table between the markers in this file.")
def settings_cmd(readme: Path | None) -> None:
    """Print every SHAREWISE_ setting with its default (Markdown table)."""
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


# Concerns register their sub-commands below, one line each.
main.add_command(reminders)
main.add_command(deliveries)
main.add_command(links_cmd)


if __name__ == "__main__":
    main()
