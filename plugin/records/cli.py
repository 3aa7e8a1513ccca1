"""``sharewise audit verify [RECORD]``: check the hash chain of the audit trails.

Reads every record's trail (or one record's, by its ``SR-`` id) in batches and reports each
trail whose chain is broken, with its first bad entry. Exit status 0 when every trail holds,
1 when one does not, 2 when the record does not exist.
"""

from __future__ import annotations

import click


@click.group()
def audit() -> None:
    """The records' audit trails."""


@audit.command("verify")
@click.argument("record", required=False)
def verify_cmd(record: str | None) -> None:
    """Check the audit trail of RECORD (default: every record) for tampering."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.audit import verify_trails

    app = existing_app()
    checked = broken = entries = 0
    with app.app_context(), session_scope(app, readonly=True) as session:
        for trail in verify_trails(session, record):
            checked += 1
            entries += trail.entries
            if trail.broken is not None:
                broken += 1
                b = trail.broken
                click.echo(f"{trail.public_id}: BROKEN at entry {b.position} of {trail.entries} "
                           f"({b.event}, {b.at.isoformat()}): it, or an entry before it, was "
                           "changed, removed or inserted", err=True)
    if record is not None and checked == 0:
        click.echo(f"no record {record}", err=True)
        raise SystemExit(2)
    click.echo(f"{checked} audit trail(s), {entries} entries: "
               + (f"{broken} broken" if broken else "every chain holds"))
    if broken:
        raise SystemExit(1)
