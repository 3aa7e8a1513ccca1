"""``sharewise reminders ...``: run a scan by hand, schedule missing reminder rows.

``sharewise reminders scan [--now ISO-8601]`` runs one scan in this process and sends what it
claims right here (with the configured mail backend), so an operator catching up after downtime,
a test or a demo sees the result at once; ``--enqueue`` hands the sends to the Celery workers
instead. With ``--now`` in the future it sends what would be due then (the real clock still
governs claims, so the regular scans are never blocked by it).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import click


def parse_now(value: str | None) -> datetime | None:
    """An ISO-8601 date-time; without an offset it is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            "use ISO-8601, for example 2026-05-27T18:00:00+01:00 or 2026-05-27T17:00Z"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@click.group()
def reminders() -> None:
    """Reminders and manager digests."""


@reminders.command("scan")
@click.option("--now", "now_text", default=None, metavar="ISO-8601",
              help="Pretend it is this moment (default: now). Naive times are UTC.")
@click.option("--enqueue", is_flag=True,
              help="Hand the sends to the Celery workers instead of sending in this process.")
def scan_cmd(now_text: str | None, enqueue: bool) -> None:
    """Run one reminder scan by hand and send what is due."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.reminders.services import run_scan

    now = parse_now(now_text)
    app = existing_app()
    with app.app_context():
        result = run_scan(app, now=now, send_inline=not enqueue)
    click.echo(f"scan at {result.now.isoformat()}: {result.summary()}")
    if result.outcomes:
        counts = Counter(result.outcomes)
        click.echo("sent here: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


@reminders.command("schedule-missing")
def schedule_missing_cmd() -> None:
    """Write reminder rows for open records that have none (records made before reminders)."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.reminders.services import schedule_missing

    app = existing_app()
    with app.app_context():
        n = schedule_missing(app)
    click.echo(f"scheduled reminders for {n} record(s)")
