"""Golden-rule completeness validation of a decision record's values.

``validate(values)`` takes the normalised, JSON-ready values of a record (keyed by spec field
name: text as ``str``, choices as their code, checkboxes as ``bool``, dates as ISO
``YYYY-MM-DD``, date-times as ISO 8601) and returns a list of :class:`Problem`; an empty list
means the record is complete. Incomplete is a normal outcome, never an exception.

Every rule is derived from the field spec (``forms/decision_record.toml``), none is written
per field here:

- a value that is not of the field's type (a date that is not a date, a choice the form does
  not offer, text over ``max_length``) is a problem of that field;
- ``required`` fields must have a value (a required checkbox must be ticked);
- ``required_when`` fields must have a value when every listed field holds one of the listed
  values;
- ``not_before`` dates must not be earlier than the other field's date (a date-time is taken as
  its calendar date in the form's time zone, Europe/London);
- ``not_future`` dates must not be later than ``today`` (default: today in Europe/London);
- ``[[checks]]``: when the condition holds, the field must take one of the allowed values.

Each problem carries the golden rule (1-7) of the field's section; section 0 (the case details,
such as ``purpose``) belongs to rule 7, the record. Messages start ``"Rule N: "`` and are plain
English for the practitioner. A field gets at most one problem (the first found, in the order
above), so the list reads as a to-do list.

The checks run inside a marshmallow schema built from the spec with
:func:`sharewise.forms.schemas.field_for`, with a ``@validates_schema`` hook that collects the
completeness problems.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, Schema, ValidationError, validates_schema

from sharewise.forms.schemas import field_for
from sharewise.forms.spec import (
    FieldSpec,
    FormSpec,
    TenantOptions,
    code_of,
    form_for,
    holds,
    load_spec,
)

__all__ = ["Problem", "describe_invalid", "rule_of", "rule_prefix", "today_in", "validate"]



@dataclass(frozen=True)
class Problem:
    """One thing that stops the record being complete (or a value that cannot be understood)."""

    field: str
    rule: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by the API and stored with an upload: ``{field, rule, message}``."""
        return {"field": self.field, "rule": self.rule, "message": self.message}


def rule_of(field: FieldSpec) -> int:
    """The golden rule a field belongs to: its section, with the case details under rule 7."""
    return field.section if 1 <= field.section <= 7 else 7


def rule_prefix(form: FormSpec, rule: int) -> str:
    """``"Rule 4 (consent): "`` (v2, which names its rules), ``"Rule 4: "`` (v1)."""
    name = form.section(rule).name
    return f"Rule {rule} ({name}): " if name else f"Rule {rule}: "


def _prefixed(field: FieldSpec, form: FormSpec | None, text: str) -> str:
    return rule_prefix(form or load_spec(), rule_of(field)) + text


def _bare(label: str) -> str:
    """A label without its trailing typing hint such as ``(DD/MM/YYYY)``."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", label).strip()


def _noun(label: str) -> str:
    """A label as a noun phrase inside a sentence: no trailing hint, lower-case first letter."""
    text = _bare(label)
    return text[:1].lower() + text[1:]


def _shown(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def describe_invalid(field: FieldSpec, value: Any, form: FormSpec | None = None) -> str:
    """Why a value cannot be this field's (from the spec; the value itself is not echoed)."""
    quoted = f"\u201c{_bare(field.label)}\u201d"

    textual = field.type in ("text", "multiline", "email")
    if textual and isinstance(value, str) and field.max_length and len(value) > field.max_length:
        return _prefixed(field, form,
            f"{quoted} is too long: at most {field.max_length} characters, "
            f"this has {len(value)}.",
        )
    if field.type == "date":
        return _prefixed(field, form, f"{quoted} must be a real date, typed as DD/MM/YYYY.")
    if field.type == "datetime":
        return _prefixed(field, form,
                         f"{quoted} must be a date and time, typed as DD/MM/YYYY HH:MM.")
    if field.type == "choice":
        labels = ", ".join(o.label for o in field.options)
        return _prefixed(field, form, f"{quoted} must be one of: {labels}.")
    if field.type == "checkbox":
        return _prefixed(field, form, f"{quoted} must be ticked or left empty.")
    if field.type == "email":
        return _prefixed(field, form, f"{quoted} must be an email address.")
    return _prefixed(field, form, f"{quoted} could not be read as text.")


def _missing(field: FieldSpec, value: Any) -> bool:
    if field.type == "checkbox":
        return value is not True
    return value is None




def _empty(field: FieldSpec, value: Any) -> bool:
    return value is not True if field.type == "checkbox" else value is None


def _as_date(value: Any, zone: ZoneInfo) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    return None


#: a date-time typed a few minutes ahead of the server's clock is not "in the future"
CLOCK_SLACK = timedelta(minutes=5)


def _completeness(
    form: FormSpec, data: Mapping[str, Any], today: date, now: datetime | None = None
) -> dict[str, Problem]:
    """Field name -> problem for every completeness rule the loaded data breaks."""
    zone = ZoneInfo(form.timezone)
    found: dict[str, Problem] = {}
    shared = bool(form.shared_field and data.get(form.shared_field) is not None)
    tense = "shared" if shared else "will share"

    def add(field: FieldSpec, text: str) -> None:
        text = text.replace("{share}", tense)
        found[field.name] = Problem(field.name, rule_of(field), _prefixed(field, form, text))

    for field in form.fields:
        value = data.get(field.name)
        applies = bool(field.required_when) and holds(field.required_when, data)
        if (field.required or applies) and _missing(field, value):
            add(field, field.message or "this is required.")
            continue
        if field.only_when and not applies and not _empty(field, value):
            add(field, field.stray or "this does not apply; clear it.")
            continue
        if field.type == "datetime" and field.not_future and isinstance(value, datetime):
            limit = (now or datetime.now(zone)) + CLOCK_SLACK
            moment = value if value.tzinfo else value.replace(tzinfo=zone)
            if moment > limit:
                shown = moment.astimezone(zone).strftime("%d/%m/%Y %H:%M")
                add(field, f"the {_noun(field.label)} ({shown}) is in the future.")
                continue
        day = _as_date(value, zone)
        if day is None:
            continue
        if field.not_before:
            other = form[field.not_before]
            earliest = _as_date(data.get(other.name), zone)
            if earliest is not None and day < earliest:
                add(
                    field,
                    f"the {_noun(field.label)} ({_shown(day)}) cannot be earlier than "
                    f"the \u201c{other.label}\u201d date of this request ({_shown(earliest)}).",
                )
                continue
        if field.not_future and field.type != "datetime" and day > today:
            add(
                field,
                f"the {_noun(field.label)} ({_shown(day)}) is in the future; "
                f"today is {_shown(today)}.",
            )
    for check in form.checks:
        if check.field in found:
            continue
        value = data.get(check.field)
        if value is None or not holds(check.when, data) or not check.breaks(code_of(value)):
            continue
        message = rule_prefix(form, check.rule) + check.message.replace("{share}", tense)
        found[check.field] = Problem(check.field, check.rule, message)
    return found


class _RecordSchema(Schema):
    """Base of the generated schema: loads typed values, then checks completeness."""

    form: FormSpec
    today: date
    now: datetime | None
    found: dict[str, Problem]

    class Meta:
        unknown = EXCLUDE

    @validates_schema(skip_on_field_errors=False)
    def _complete(self, data: dict[str, Any], **_: Any) -> None:
        self.found = _completeness(self.form, data, self.today, self.now)
        if self.found:
            raise ValidationError({n: [p.message] for n, p in self.found.items()})


@cache
def _schema_class(form: FormSpec) -> type[_RecordSchema]:
    declared: dict[str, Any] = {f.name: field_for(f) for f in form.fields}
    declared["form"] = form
    return type("DecisionRecordSchema", (_RecordSchema,), declared)


_per_thread = threading.local()


def _schema(form: FormSpec) -> _RecordSchema:
    """This thread's instance of the form's schema.

    Making a marshmallow schema deep-copies every declared field (about half the cost of a
    validation), so each thread keeps one; :func:`validate` sets ``today`` and ``found``
    before each load and clears ``found`` after it, so nothing of one record stays with the next.
    """
    schemas: dict[FormSpec, _RecordSchema] | None = getattr(_per_thread, "schemas", None)
    if schemas is None:
        schemas = _per_thread.schemas = {}
    schema = schemas.get(form)
    if schema is None:
        schema = schemas[form] = _schema_class(form)()
    return schema


def _clean(form: FormSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Blank text is no value; date objects become ISO text so the schema loads one form."""
    out: dict[str, Any] = {}
    for name in form.names:
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, str) and not value.strip():
            value = None
        elif isinstance(value, datetime | date):
            value = value.isoformat()
        out[name] = value
    return out


def today_in(form: FormSpec | None = None) -> date:
    """Today's date in the form's time zone (Europe/London)."""
    return datetime.now(ZoneInfo((form or load_spec()).timezone)).date()


def validate(
    values: Mapping[str, Any],
    *,
    today: date | None = None,
    now: datetime | None = None,
    version: int = 1,
    tenant_options: TenantOptions = (),
) -> list[Problem]:
    """Check a record's values against every completeness rule of its schema ``version``.

    Returns the problems in form order (then the cross-field checks); ``[]`` means complete.
    ``today`` defaults to the current date in Europe/London; ``now`` (for date-times that
    must not be in the future) to the current time, or the end of ``today`` when only
    ``today`` is given. ``tenant_options``: the choices the record's tenant added to its
    form (:func:`sharewise.forms.spec.form_for`).
    """
    form = form_for(version, tuple(tuple(pair) for pair in tenant_options))
    schema = _schema(form)
    schema.today = today or today_in(form)
    if now is None and today is not None:
        now = datetime.combine(today, time(23, 59), ZoneInfo(form.timezone))
    schema.now = now
    schema.found = {}
    cleaned = _clean(form, values)
    try:
        schema.load(cleaned)
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {}
    else:
        return []
    finally:
        found, schema.found = schema.found, {}
    problems: list[Problem] = []
    for field in form.fields:
        ours = found.get(field.name)
        raw = messages.get(field.name)
        texts = raw if isinstance(raw, list) else [raw] if raw else []
        if ours is not None and ours.message in texts:
            texts = [t for t in texts if t != ours.message]
        if texts:
            # marshmallow could not load the value itself: say what the field needs.
            message = describe_invalid(field, cleaned.get(field.name), form)
            problems.append(Problem(field.name, rule_of(field), message))
        elif ours is not None and ours.rule == rule_of(field):
            problems.append(ours)
    listed = {p.field for p in problems}
    problems.extend(p for n, p in found.items() if n not in listed)
    return problems
