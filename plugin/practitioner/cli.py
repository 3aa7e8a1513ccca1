"""``sharewise links RECORD_ID``: print fresh practitioner links for a record.

Operators use it when a practitioner's link has expired: the new links are signed now with the
current first key, so they are valid for ``LINK_MAX_AGE`` from now. Nothing else changes: the
record, its uploads and its status stay as they are.
"""

from __future__ import annotations

import json

import click

from sharewise.plugin import links
from sharewise.plugin.settings import settings_of


@click.command("links")
@click.argument("record_id")
@click.option("--json", "as_json", is_flag=True, help="Print the links as a JSON object.")
def links_cmd(record_id: str, as_json: bool) -> None:
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
