"""The audit trail's hash chain: each entry's ``chain`` is the SHA-256 of the previous entry's
``chain`` (of the same record) and of the entry's own content, so an entry changed, removed or
slipped in between others no longer matches the entries after it.

The content hashed is a JSON array, compact and UTF-8: ``[previous, record_id, at, actor,
event, from_status, to_status, reason]``, with ``at`` as ISO 8601 UTC with microseconds and
``previous`` the empty string for a record's first entry, and then ``client`` (the keyed hash
of the client's address) for an entry that has one. The ``0006_audit_chain`` migration
chains the entries written before it with this same function, so it must not change.

Limits: the chain is not keyed. It shows that a trail was altered unless whoever altered it
also recomputed every later link, and it cannot show entries cut off the end of a trail; the
copy of the trail each post-back sends the host is the check against both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


class ChainedEntry(Protocol):
    """What the chain reads of an audit entry."""

    id: int
    record_id: int
    at: datetime
    actor: str
    event: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    client: str | None
    chain: str | None


def link(previous: str | None, record_id: int, at: datetime, actor: str, event: str,
         from_status: str | None, to_status: str | None, reason: str | None,
         client: str | None = None) -> str:
    """The ``chain`` value of an entry that follows ``previous`` (``None``: the first)."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    content = [previous or "", record_id, stamp, actor, event, from_status, to_status, reason]
    if client is not None:
        content.append(client)
    data = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def link_of(previous: str | None, entry: Any) -> str:
    """:func:`link` for an entry (an :class:`AuditEntry` or a row with the same names)."""
    return link(previous, entry.record_id, entry.at, entry.actor, entry.event,
                entry.from_status, entry.to_status, entry.reason, getattr(entry, "client", None))


@dataclass(frozen=True)
class Break:
    """The first entry of a trail whose ``chain`` does not match."""

    entry_id: int
    position: int  # 1-based, in the order the entries were written
    at: datetime
    event: str


def first_break(entries: Iterable[ChainedEntry]) -> Break | None:
    """The first entry (in id order) whose ``chain`` is not what its content and its
    predecessor give, or ``None`` when the whole trail holds."""
    previous: str | None = None
    for position, entry in enumerate(entries, start=1):
        if entry.chain != link_of(previous, entry):
            return Break(entry.id, position, entry.at, entry.event)
        previous = entry.chain
    return None
