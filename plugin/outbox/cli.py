"""``sharewise deliveries ...``: operators' view of the outbox.

- ``list [--state S] [--tenant T]``: deliveries, newest first;
- ``show ID``: one delivery and every attempt (time, status code or error, duration);
- ``retry ID ... | --all-dead``: send again now, with the same webhook-id (any state but
  ``sending``; a delivered one is re-sent too: the host deduplicates);
- ``enable-callback TENANT``: re-enable a tenant's callback after a 410 and release what was
  parked meanwhile.

Output carries ids, states and codes only, never a body.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from sharewise.plugin.db import session_scope, utcnow
from sharewise.plugin.outbox.models import (
    DEAD,
    FAILED,
    PENDING,
    SENDING,
    STATES,
    Delivery,
    DeliveryAttempt,
    TenantState,
)
from sharewise.plugin.outbox.sender import enable_callback
from sharewise.plugin.outbox.services import send_soon


def _app() -> Flask:
    try:
        return current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        from sharewise.plugin.app import existing_app

        return existing_app()


def _ts(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


@click.group("deliveries")
def deliveries() -> None:
    """Post-backs to the hosts: list, inspect, re-send, re-enable a callback."""


@deliveries.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only deliveries in this state.")
@click.option("--tenant", help="Only this tenant's deliveries.")
@click.option("--limit", type=int, default=100, show_default=True)
def list_(state: str | None, tenant: str | None, limit: int) -> None:
    """List deliveries, newest first."""
    app = _app()
    with app.app_context(), session_scope(app) as session:
        from sharewise.plugin.records.models import Record

        # every attempt ever made, also those before an operator's `retry` (which starts a
        # fresh round: Delivery.attempts counts only the current one)
        tries = (select(func.count(DeliveryAttempt.id))
                 .where(DeliveryAttempt.delivery_id == Delivery.id).scalar_subquery())
        q = (select(Delivery, Record.public_id, tries)
             .join(Record, Record.id == Delivery.record_id))
        if state:
            q = q.where(Delivery.state == state)
        if tenant:
            q = q.where(Delivery.tenant == tenant)
        rows = session.execute(q.order_by(Delivery.id.desc()).limit(limit)).all()
        click.echo(f"{'ID':<31} {'STATE':<9} {'EVENT':<23} {'RECORD':<20} {'TENANT':<16} "
                   f"{'TRIES':>5} {'LAST':<22} NEXT")
        for d, record_id, tried in rows:
            last = str(d.last_status or d.last_error or "-")
            held = d.state == PENDING and d.next_attempt_at is None
            when = "held (callback disabled)" if held else _ts(d.next_attempt_at)
            click.echo(f"{d.public_id:<31} {d.state:<9} {d.event_type:<23} {record_id:<20} "
                       f"{d.tenant:<16} {tried:>5} {last:<22} {when}")
        disabled = session.scalars(
            select(TenantState.tenant).where(TenantState.callback_disabled.is_(True))
        ).all()
        for slug in disabled:
            click.echo(f"note: tenant {slug}'s callback is disabled "
                       f"(sharewise deliveries enable-callback {slug})")


@deliveries.command("show")
@click.argument("delivery_id")
def show(delivery_id: str) -> None:
    """Show one delivery and its attempts."""
    app = _app()
    with app.app_context(), session_scope(app) as session:
        from sharewise.plugin.records.models import Record

        d = session.scalars(select(Delivery).where(Delivery.public_id == delivery_id)).first()
        if d is None:
            raise click.ClickException(f"no delivery {delivery_id}")
        record = session.get(Record, d.record_id)
        attempts = session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == d.id)
            .order_by(DeliveryAttempt.id)
        ).all()
        for label, value in [
            ("delivery", d.public_id), ("webhook-id", d.public_id), ("event", d.event_type),
            ("record", record.public_id if record else "?"), ("tenant", d.tenant),
            ("state", d.state), ("attempts", f"{len(attempts)} ({d.attempts} in this round)"),
            ("created", _ts(d.created_at)),
            ("next attempt", _ts(d.next_attempt_at)), ("delivered", _ts(d.delivered_at)),
            ("last result", d.last_status or d.last_error or "-"),
        ]:
            click.echo(f"{label + ':':<14} {value}")
        click.echo(f"\n{'#':>3}  {'STARTED (UTC)':<19}  {'RESULT':<11}  {'STATUS/ERROR':<22}  MS")
        for a in attempts:
            outcome = str(a.status_code or a.error or "-")
            ms = "-" if a.duration_ms is None else str(a.duration_ms)
            click.echo(f"{a.number:>3}  {_ts(a.started_at):<19}  {a.verdict or 'in flight':<11}"
                       f"  {outcome:<22}  {ms}")


def requeue(session: Any, d: Delivery) -> bool:
    """Make ``d`` due now (same webhook-id, a fresh set of retries). False if it is in flight."""
    if d.state == SENDING:
        return False
    now = utcnow()
    d.state = PENDING
    d.attempts = 0
    d.next_attempt_at = now
    d.enqueued_at = now
    d.operators_notified_at = None
    return True


@deliveries.command("retry")
@click.argument("delivery_ids", nargs=-1)
@click.option("--all-dead", is_flag=True, help="Re-send every dead delivery.")
@click.option("--all-failed", is_flag=True, help="Re-send every failed delivery.")
def retry(delivery_ids: tuple[str, ...], all_dead: bool, all_failed: bool) -> None:
    """Send deliveries again now (the host sees the same webhook-id)."""
    if not delivery_ids and not all_dead and not all_failed:
        raise click.UsageError("give delivery ids, --all-dead or --all-failed")
    app = _app()
    queued: list[str] = []
    with app.app_context():
        with session_scope(app) as session:
            q = select(Delivery)
            states = [s for s, on in ((DEAD, all_dead), (FAILED, all_failed)) if on]
            found = []
            if delivery_ids:
                found += session.scalars(q.where(Delivery.public_id.in_(delivery_ids))).all()
                missing = set(delivery_ids) - {d.public_id for d in found}
                if missing:
                    raise click.ClickException(f"no delivery {', '.join(sorted(missing))}")
            if states:
                found += session.scalars(q.where(Delivery.state.in_(states))).all()
            for d in found:
                if requeue(session, d):
                    queued.append(d.public_id)
                else:
                    click.echo(f"{d.public_id}: being sent right now; left alone")
        for public_id in queued:
            send_soon(public_id, app=app)
            click.echo(f"{public_id}: queued")
    click.echo(f"{len(queued)} delivery(ies) queued")


@deliveries.command("enable-callback")
@click.argument("tenant")
def enable_callback_cmd(tenant: str) -> None:
    """Re-enable TENANT's callback (after a 410) and send what was held back."""
    app = _app()
    with app.app_context():
        with session_scope(app) as session:
            released = enable_callback(session, tenant)
            failed_410 = session.scalar(
                select(func.count()).select_from(Delivery).where(
                    Delivery.tenant == tenant, Delivery.state == FAILED,
                    Delivery.last_status == 410,
                )
            )
        for public_id in released:
            send_soon(public_id, app=app)
        click.echo(f"tenant {tenant}: callback enabled; {len(released)} held delivery(ies) queued")
        if failed_410:
            click.echo(f"{failed_410} delivery(ies) that got the 410 are failed; re-send them with "
                       "`sharewise deliveries retry ID` or `--all-failed`")
