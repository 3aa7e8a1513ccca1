"""Conversion between a field's normalised value and the text a PDF viewer shows and stores.

Normalised values are what the host contract carries (JSON-ready): text as ``str``, choices as
their export code, checkboxes as ``bool``, dates as ISO ``YYYY-MM-DD`` and date-times as ISO
8601 with offset. In the PDF, dates are shown as ``DD/MM/YYYY`` and date-times as
``DD/MM/YYYY HH:MM`` in the form's time zone (Europe/London), which is what a practitioner
expects to read and type. Both directions live here so prefill and read-back cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sharewise.forms.spec import FieldSpec, load_spec

_DMY = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})\s*$")
_YMD = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_DMY_HM = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})\s*$")


def form_zone() -> ZoneInfo:
    """The time zone dates on the form are read in (from the spec)."""
    return ZoneInfo(load_spec().timezone)


def parse_date(text: str) -> date:
    """Parse a typed date: ``DD/MM/YYYY`` (also ``-`` or ``.`` separated) or ``YYYY-MM-DD``.

    Raises ``ValueError`` with a practitioner-readable message when the text is not a date.
    """
    m = _YMD.match(text)
    try:
        if m:
            return date(int(m[1]), int(m[2]), int(m[3]))
        m = _DMY.match(text)
        if m:
            return date(int(m[3]), int(m[2]), int(m[1]))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a real date") from None
    raise ValueError(f"{text.strip()!r} is not a date; type it as DD/MM/YYYY")


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 date-time or the form's ``DD/MM/YYYY HH:MM`` (form time zone).

    Raises ``ValueError`` for text that is not one, and for a moment at the very edge of the
    calendar (year 1 or 9999) that UTC or the form's time zone cannot hold.
    """
    m = _DMY_HM.match(text)
    if m:
        day, month, year, hour, minute = (int(g) for g in m.groups())
        value = datetime(year, month, day, hour, minute, tzinfo=form_zone())
    else:
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            value = value.replace(tzinfo=form_zone())
    try:
        value.astimezone(UTC), value.astimezone(form_zone())
    except OverflowError as exc:
        raise ValueError("a moment outside the calendar") from exc
    return value


def to_display(field: FieldSpec, value: Any) -> str | bool | None:
    """The value to put in the PDF for a normalised value (``None`` leaves the field empty).

    Text comes back as ``str``, checkboxes as ``bool``, choices as the export value.
    Raises ``ValueError`` for a choice value the field does not define or a checkbox value
    that is not a boolean.
    """
    if value is None or value == "":
        return False if field.type == "checkbox" else None
    if field.type == "checkbox":
        if not isinstance(value, bool):  # "false" or "no" would otherwise tick the box
            raise ValueError(f"{field.name}: a check box takes true or false")
        return value
    if field.type == "choice":
        if value not in field.option_values:
            raise ValueError(
                f"{field.name}: {value!r} is not one of {', '.join(field.option_values)}"
            )
        return value
    if field.type == "date":
        d = value if isinstance(value, date) else parse_date(str(value))
        return d.strftime("%d/%m/%Y")
    if field.type == "datetime":
        dt = value if isinstance(value, datetime) else parse_datetime(str(value))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=form_zone())
        return dt.astimezone(form_zone()).strftime("%d/%m/%Y %H:%M")
    return str(value)


def from_display(field: FieldSpec, raw: str | bool | None) -> str | bool | None:
    """Normalise what a PDF holds for a field into its JSON-ready value.

    Empty text becomes ``None``; an unticked checkbox ``False``. Raises ``ValueError`` with a
    practitioner-readable message when the text cannot be a value of this field (a date that
    is not a date, a choice the form does not offer).
    """
    if field.type == "checkbox":
        return bool(raw)
    if raw is None or raw is False:
        return None
    text = str(raw).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return None
    if field.type == "choice":
        if text not in field.option_values:
            raise ValueError(f"{text!r} is not one of the choices for {field.label!r}")
        return text
    if field.type == "date":
        return parse_date(text).isoformat()
    if field.type == "datetime":
        try:
            return parse_datetime(text).isoformat()
        except ValueError:
            raise ValueError(f"{text!r} is not a date and time") from None
    return text


def _json_default(value: Any) -> str:
    """Dates and date-times as ISO 8601 (as in the JSON the host sees), anything else as text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def canonical_json(values: Any) -> bytes:
    """The one byte form of a mapping of values that every hash in Sharewise is taken over.

    A ``date`` / ``datetime`` gives the same bytes as its ISO 8601 text, so the hash of values
    does not depend on whether dates were passed as objects or as JSON strings.
    """
    return json.dumps(
        values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode("utf-8")


def values_hash(values: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``values``."""
    return hashlib.sha256(canonical_json(values)).hexdigest()
