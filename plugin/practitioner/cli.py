"""``sharewise links RECORD_ID``: print fresh practitioner links for a record;
``sharewise links revoke RECORD_ID``: withdraw the ones handed out so far.

Operators print fresh links when a practitioner's link has expired: they are signed now with
the current first key, so they are valid for ``LINK_MAX_AGE`` from now. Nothing else changes:
the record, its uploads and its status stay as they are.

Revoking is for a link that reached the wrong person: every page, download and upload link to
the record signed until that moment stops opening it at once (the page says the link was
withdrawn), and the audit trail says so. The host's status link keeps working. Links printed
afterwards (from the next second: links carry whole seconds) open the record again.
"""

from __future__ import annotations

import json
import time

import click

from sharewise.plugin import links
from sharewise.plugin.settings import settings_of


class _LinksGroup(click.Group):
    """``links RECORD`` is ``links show RECORD``: the command existed before its siblings."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]  # also `links --json RECORD`
        return super().parse_args(ctx, args)


@click.group("links", cls=_LinksGroup)
def links_cmd() -> None:
    """Practitioner links of a record: print fresh ones (``links RECORD_ID``) or withdraw
    them (``links revoke RECORD_ID``)."""


@links_cmd.command("show")
@click.argument("record_id")
@click.option("--json", "as_json", is_flag=True, help="Print the links as a JSON object.")
def show_cmd(record_id: str, as_json: bool) -> None:
    """Print fresh form, PDF, upload and status links for RECORD_ID (e.g. SR-...)."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.services import RecordNotFound, get_by_public_id

    app = existing_app()
    with app.app_context():
        with session_scope(app) as session:
            try:
                record = get_by_public_id(session, record_id.strip())
            except RecordNotFound:
                raise click.ClickException(f"no record {record_id!r}") from None
            revoked = record.links_revoked_at
            if revoked is not None and time.time() - revoked.timestamp() < 1:
                time.sleep(1)  # a link signed in the second of the withdrawal is withdrawn
            urls = links.make_links(record, app)
            status = record.status
    if as_json:
        click.echo(json.dumps({"record_id": record_id, "status": status, **urls}, indent=2))
        return
    click.echo(f"record {record_id} ({status.replace('_', ' ')})")
    width = max(len(k) for k in urls)
    for key, url in urls.items():
        click.echo(f"  {key.ljust(width)}  {url}")
    days = settings_of(app).link_max_age // 86400
    click.echo(f"These links stop working in {days} day(s).")


@links_cmd.command("revoke")
@click.argument("record_id")
@click.option("--reason", default=None, help="Why, for the audit trail (no personal data).")
def revoke_cmd(record_id: str, reason: str | None) -> None:
    """Withdraw every practitioner link to RECORD_ID handed out so far."""
    from sharewise.plugin.app import existing_app
    from sharewise.plugin.db import session_scope
    from sharewise.plugin.records.services import RecordNotFound, revoke_links

    app = existing_app()
    with app.app_context(), session_scope(app) as session:
        try:
            revoke_links(session, record_id.strip(), reason)
        except RecordNotFound:
            raise click.ClickException(f"no record {record_id!r}") from None
    click.echo(f"record {record_id}: every practitioner link handed out so far is withdrawn. "
               f"`sharewise links {record_id}` prints new ones.")
