"""Personal fields sealed in the database: a JSON value kept encrypted in its column.

:func:`sealed_json` declares such a field on a model: the attribute code uses (``prefill``)
holds the plain value in memory, and the column (``prefill_sealed``, named ``prefill`` in the
table) holds ``sealed:`` and the URL-safe base64 of the value sealed by the session's keyring
(:mod:`sharewise.plugin.crypto`), bound to a context the model gives: the table, the field and
the record it belongs to, so a value copied to another record does not decrypt.

The ORM does the work: a value is sealed when its row is flushed (``before_insert`` /
``before_update``, keyring from ``Session.info``) and opened when the row is loaded
(``load`` / ``refresh``), so objects that outlive their session (``expire_on_commit`` is off)
keep their plain values, and no caller ever sees ciphertext. A column written before sealing
existed (plain JSON text) reads as it is, until ``sharewise keys rotate`` seals it.

Limits: a sealed field cannot be searched or compared in SQL (nothing queries these fields;
equality look-ups use keyed hashes instead); a change made by mutating the value in place is
not seen: assign a new value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from sharewise.plugin.crypto import Keyring

#: ``Session.info`` key of the keyring that seals and opens the fields
KEYRING_INFO = "sharewise.keyring"
PREFIX = "sealed:"
_PENDING = "sealed:pending"  # placeholder that marks the column dirty until the flush seals it


class SealedJSON:
    """A model attribute whose value is kept sealed in ``column`` (see the module)."""

    def __init__(self, column: str, default: Callable[[], Any] | None = None) -> None:
        self.column = column
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def _slot(self) -> str:
        return f"_plain_{self.name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        if self._slot not in obj.__dict__:
            obj.__dict__[self._slot] = self.default() if self.default else None
        return obj.__dict__[self._slot]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self._slot] = value
        setattr(obj, self.column, _PENDING)


def seal(keys: Keyring, value: Any, context: str) -> str:
    """The column text of ``value``."""
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return PREFIX + base64.urlsafe_b64encode(keys.encrypt(data, context)).decode()


def unseal(keys: Keyring, text: str | None, context: str) -> Any:
    """The value of a column's text (plain JSON written before sealing: as it is)."""
    if text is None:
        return None
    if isinstance(text, str) and text.startswith(PREFIX):
        blob = base64.urlsafe_b64decode(text[len(PREFIX):].encode())
        return json.loads(keys.decrypt(blob, context))
    return json.loads(text) if isinstance(text, str | bytes) else text


def is_current(keys: Keyring, text: str | None) -> bool:
    """Whether a column's text is sealed with the newest key (else a rotation seals it)."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return text is None
    return keys.is_current(base64.urlsafe_b64decode(text[len(PREFIX):].encode()))


def keyring_of(session: Session | None) -> Keyring:
    """The keyring a session seals with (set by the app on its session factories)."""
    keys = session.info.get(KEYRING_INFO) if session is not None else None
    if keys is None:
        raise RuntimeError("this session has no keyring: sealed fields need the app's sessions")
    return keys


def sealed_fields(model: type) -> list[SealedJSON]:
    """The sealed fields of ``model``."""
    return [v for v in vars(model).values() if isinstance(v, SealedJSON)]


def register(model: type, context: Callable[[Any, str], str],
             before_seal: Callable[[Any, Keyring], None] | None = None) -> None:
    """Seal ``model``'s :class:`SealedJSON` fields on flush and open them on load.

    ``context(obj, field_name)`` names what a value is bound to; ``before_seal(obj, keys)``
    runs first on every insert and update that changes a sealed field (to set what the
    context needs, such as a public id, or keyed hashes of the plain values).
    """
    fields = sealed_fields(model)

    def _seal(_mapper: Any, _conn: Any, target: Any, inserting: bool) -> None:
        changed = inserting or any(target.__dict__.get(f.column) == _PENDING for f in fields)
        if not changed:
            return
        keys = keyring_of(object_session(target))
        if before_seal is not None:
            before_seal(target, keys)
        for f in fields:
            if inserting or target.__dict__.get(f.column) == _PENDING:
                value = getattr(target, f.name)
                setattr(target, f.column, None if value is None else
                        seal(keys, value, context(target, f.name)))

    def _open(target: Any, session: Session, names: Any = None) -> None:
        keys = None
        for f in fields:
            if names is not None and f.column not in names:
                continue
            if f.column not in target.__dict__:
                continue  # not loaded
            keys = keys or keyring_of(session)
            target.__dict__[f"_plain_{f.name}"] = unseal(keys, target.__dict__[f.column],
                                                         context(target, f.name))

    event.listen(model, "before_insert", lambda m, c, t: _seal(m, c, t, True))
    event.listen(model, "before_update", lambda m, c, t: _seal(m, c, t, False))
    event.listen(model, "load", lambda t, ctx: _open(t, ctx.session))
    event.listen(model, "refresh", lambda t, ctx, attrs: _open(t, ctx.session, attrs))
