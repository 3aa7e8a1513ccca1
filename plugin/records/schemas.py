"""Marshmallow schemas of the inbound events and their mapping to the form's prefill values.

Leaf fields are built from the form's field spec (``forms.schemas.field_for``), so lengths,
choices and types cannot drift from the PDF. Unknown keys are ignored (hosts may send more).
Errors are flattened to ``[{"field": "data.subject.name", "message": ...}]``; messages never
echo the value that was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from sharewise.forms.schemas import field_for
from sharewise.forms.spec import load_spec

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible_instant(value: datetime) -> None:
    """Refuse instants the reminder arithmetic cannot shift (year 1, year 9999...)."""
    try:
        ok = _EARLIEST <= value.astimezone(UTC) < _LATEST
    except (OverflowError, ValueError):
        ok = False
    if not ok:
        raise ValidationError("Must be between 2000-01-01 and 2100-01-01.")


EVENT_TYPES = ("share.requested", "share.cancelled", "share.form_submitted")


def _f(name: str, *, required: bool = True) -> fields.Field:
    """The form's own field for prefill field ``name``, marked with it (see
    :func:`prefill_leaves`)."""
    field = field_for(load_spec()[name], required=required)
    field.metadata[_PREFILL] = name
    return field


_PREFILL = "sharewise_prefill"  # metadata key: the prefill field a leaf's value goes to


def _nested(declared: dict[str, fields.Field], name: str, *, required: bool) -> fields.Nested:
    schema = Schema.from_dict(declared, name=name)
    return fields.Nested(schema(unknown=EXCLUDE), required=required)


class EnvelopeSchema(Schema):
    """``{"type", "timestamp", "data"}``."""

    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    timestamp = fields.AwareDateTime(required=True, validate=_plausible_instant)
    data = fields.Dict(required=True)


@cache
def _envelope_schema() -> EnvelopeSchema:
    return EnvelopeSchema()


_REQUEST_ID = {"request_id": fields.String(required=True, validate=validate.Length(1, 128))}


@cache
def share_requested_schema() -> Schema:
    """The ``data`` of ``share.requested``."""
    manager = _nested({"name": _f("manager_name"), "email": _f("manager_email")}, "Manager",
                      required=True)
    declared: dict[str, fields.Field] = {
        **_REQUEST_ID,
        "case": _nested({"reference": _f("case_reference")}, "Case", required=True),
        "subject": _nested(
            {
                "name": _f("subject_name"),
                "date_of_birth": _f("subject_date_of_birth", required=False),
                "type": _f("subject_type"),
            },
            "Subject",
            required=True,
        ),
        "direction": _f("request_direction"),
        "urgency": field_for(load_spec()["urgency"], required=False),
        "requester": _nested(
            {"organisation": _f("requester_organisation", required=False)},
            "Requester",
            required=False,
        ),
        "practitioner": _nested(
            {
                "id": fields.String(required=True, validate=validate.Length(1, 128)),
                "name": _f("practitioner_name"),
                "email": _f("practitioner_email"),
                "team": _f("practitioner_team", required=False),
                "manager": manager,
            },
            "Practitioner",
            required=True,
        ),
        "recipient": _nested(
            {
                "organisation": _f("recipient_organisation"),
                "name": _f("recipient_name"),
                "role": _f("recipient_role"),
            },
            "Recipient",
            required=True,
        ),
        "purpose": _f("purpose"),
        "information_requested": _f("information_requested"),
        "due_at": fields.AwareDateTime(
            required=False, allow_none=True, validate=_plausible_instant
        ),
    }
    return Schema.from_dict(declared, name="ShareRequested")(unknown=EXCLUDE)


@cache
def share_cancelled_schema() -> Schema:
    """The ``data`` of ``share.cancelled``."""
    declared = {
        **_REQUEST_ID,
        "reason": fields.String(required=False, allow_none=True, validate=validate.Length(0, 1000)),
    }
    return Schema.from_dict(declared, name="ShareCancelled")(unknown=EXCLUDE)


@cache
def share_form_submitted_schema() -> Schema:
    """The ``data`` of ``share.form_submitted`` (the PDF is base64; decoded by the view)."""
    declared = {**_REQUEST_ID, "pdf_base64": fields.String(required=True)}
    return Schema.from_dict(declared, name="ShareFormSubmitted")(unknown=EXCLUDE)


DATA_SCHEMAS = {
    "share.requested": share_requested_schema,
    "share.cancelled": share_cancelled_schema,
    "share.form_submitted": share_form_submitted_schema,
}


def flatten_errors(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """Marshmallow's nested error dict as ``[{"field": "a.b", "message": ...}]``."""
    out: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(flatten_errors(value, path))
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, dict | list | tuple):
                out.extend(flatten_errors(item, prefix))
            else:
                out.append({"field": prefix or "(body)", "message": str(item)})
    else:
        out.append({"field": prefix or "(body)", "message": str(messages)})
    return out


class EventError(Exception):
    """The event is not acceptable; ``errors`` lists each field error."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


def load_event(doc: Any) -> tuple[str, datetime, dict[str, Any]]:
    """Validate a parsed JSON body: ``(type, timestamp, data)``; raises :class:`EventError`."""
    if not isinstance(doc, dict):
        raise EventError([{"field": "(body)", "message": "The body must be a JSON object."}])
    try:
        envelope = _envelope_schema().load(doc)
    except ValidationError as exc:
        raise EventError(flatten_errors(exc.messages)) from None
    try:
        data = DATA_SCHEMAS[envelope["type"]]().load(envelope["data"])
    except ValidationError as exc:
        raise EventError(flatten_errors(exc.messages, "data")) from None
    return envelope["type"], envelope["timestamp"], data


@dataclass(frozen=True)
class PrefillLeaf:
    """A leaf of ``share.requested`` whose value is a prefill field's value as it is."""

    name: str  # the prefill field
    path: tuple[str, ...]  # where the loaded data holds it
    trusted: bool  # loaded by the form's own field, required wherever the form requires it


@cache
def prefill_leaves() -> tuple[PrefillLeaf, ...]:
    """Every leaf of :func:`share_requested_schema` built by ``_f``, found by walking it.

    :func:`prefill_values` takes these values from these paths, so what goes into a prefill
    field is exactly what the form's own field loaded. ``trusted`` when the leaf (with every
    object above it) is required wherever the form requires the field: such a value needs no
    second load by the form's prefill schema (:func:`trusted_prefill_fields`).
    """
    spec = load_spec()
    out: list[PrefillLeaf] = []

    def walk(schema: Schema, path: tuple[str, ...], required: bool) -> None:
        for name, field in schema.load_fields.items():
            here = (*path, field.attribute or name)
            if isinstance(field, fields.Nested):
                walk(field.schema, here, required and field.required)
            elif _PREFILL in field.metadata:
                target = field.metadata[_PREFILL]
                trusted = (required and field.required) or spec[target].optional
                out.append(PrefillLeaf(target, here, trusted))

    walk(share_requested_schema(), (), True)
    return tuple(out)


@cache
def trusted_prefill_fields() -> frozenset[str]:
    """Prefill fields :func:`prefill_values` fills with what the form's own field loaded."""
    return frozenset(leaf.name for leaf in prefill_leaves() if leaf.trusted)


def prefill_values(
    data: dict[str, Any],
    record_id: str,
    requested_at: datetime,
    version: int = 1,
    tenant_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The prefill values (JSON-ready, normalised) of the ``version`` form for a loaded
    ``share.requested``.

    Absent optional values are left out; the rest are in the form's order (the stored JSON
    and anything laying out the stored values see them so). The leaves of
    :func:`prefill_leaves` are copied (a date as ``YYYY-MM-DD``); the rest are Sharewise's
    own, derived here, or the tenant's (``tenant_values``: what the tenants file says of the
    organisation, which the version 2 form shows).
    """
    practitioner = data["practitioner"]
    values: dict[str, Any] = {
        "record_id": record_id,
        "host_request_id": data["request_id"],
        "urgency": data.get("urgency") or "routine",
        "requested_at": requested_at.isoformat(),
        "decided_by": practitioner["name"],
    }
    for leaf in prefill_leaves():
        value: Any = data
        for key in leaf.path:
            value = value.get(key) if value is not None else None
        if isinstance(value, date):
            value = value.isoformat()
        if value is not None:
            values[leaf.name] = value
    values.update({k: v for k, v in (tenant_values or {}).items() if v is not None})
    return {f.name: values[f.name] for f in load_spec(version).prefilled_fields
            if f.name in values}
