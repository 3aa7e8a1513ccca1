"""Marshmallow schemas of the inbound events and their mapping to the form's prefill values.

Leaf fields are built from the form's field spec (``forms.schemas.field_for``), so lengths,
choices and types cannot drift from the PDF. Unknown keys are ignored (hosts may send more).
Errors are flattened to ``[{"field": "data.subject.name", "message": ...}]``; messages never
echo the value that was sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from forms.schemas import field_for
from forms.spec import load_spec

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
    return field_for(load_spec()[name], required=required)


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


def prefill_values(data: dict[str, Any], record_id: str, requested_at: datetime) -> dict[str, Any]:
    """The form's prefill values (JSON-ready, normalised) for a loaded ``share.requested``."""
    subject, practitioner = data["subject"], data["practitioner"]
    manager, recipient = practitioner["manager"], data["recipient"]
    dob = subject.get("date_of_birth")
    values: dict[str, Any] = {
        "record_id": record_id,
        "host_request_id": data["request_id"],
        "case_reference": data["case"]["reference"],
        "subject_name": subject["name"],
        "subject_date_of_birth": dob.isoformat() if dob else None,
        "subject_type": subject["type"],
        "request_direction": data["direction"],
        "urgency": data.get("urgency") or "routine",
        "requested_at": requested_at.isoformat(),
        "practitioner_name": practitioner["name"],
        "practitioner_email": practitioner["email"],
        "practitioner_team": practitioner.get("team"),
        "manager_name": manager["name"],
        "manager_email": manager["email"],
        "requester_organisation": (data.get("requester") or {}).get("organisation"),
        "recipient_organisation": recipient["organisation"],
        "recipient_name": recipient["name"],
        "recipient_role": recipient["role"],
        "purpose": data["purpose"],
        "information_requested": data["information_requested"],
        "decided_by": practitioner["name"],
    }
    return {k: v for k, v in values.items() if v is not None}
