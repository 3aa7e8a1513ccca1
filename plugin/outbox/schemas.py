"""The events Sharewise posts to a host, as marshmallow schemas: the contract a host codes to.

They are what ``/openapi.json`` publishes under ``webhooks`` (OpenAPI 3.1) and what
``docs/host-integration.md`` shows; the suite checks every body the service really posts, and
every example in the guide, against them. The builders of the bodies are in
:mod:`sharewise.plugin.outbox.services`; ``fields`` of a completed record holds every field of
its schema version (``docs/fields.md``).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from sharewise.plugin.outbox.models import RECORD_CANCELLED, RECORD_COMPLETED, RECORD_OVERDUE

_SCHEMA_IDS = ["sharewise.decision-record/1", "sharewise.decision-record/2"]


class AuditItemSchema(Schema):
    """One entry of the record's audit trail."""

    at = fields.String(required=True, metadata={"format": "date-time"})
    event = fields.String(required=True)
    actor = fields.String(required=True)


class PdfSchema(Schema):
    """The final, flattened PDF."""

    content_type = fields.String(required=True, validate=validate.Equal("application/pdf"))
    sha256 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    size = fields.Integer(required=True, validate=validate.Range(min=1))
    base64 = fields.String(required=True, metadata={"description": "The PDF's bytes."})


class ProblemItemSchema(Schema):
    """A warning the record was completed with."""

    class Meta:
        unknown = "include"

    field = fields.String()
    rule = fields.Integer()
    message = fields.String()


class RecordCompletedSchema(Schema):
    """``data`` of ``share.record_completed``: the decision record, final."""

    schema = fields.String(required=True, validate=validate.OneOf(_SCHEMA_IDS))
    schema_version = fields.Integer(required=True, validate=validate.OneOf([1, 2]))
    record_id = fields.String(required=True)
    request_id = fields.String(required=True)
    tenant = fields.String(required=True)
    status = fields.String(required=True, validate=validate.Equal("complete"))
    completed_at = fields.String(required=True, metadata={"format": "date-time"})
    decision = fields.String(required=True, allow_none=True)
    fields_ = fields.Dict(required=True, data_key="fields", metadata={
        "description": "Every field of the record's schema version, in form order "
                       "(docs/fields.md); an empty field is null."})
    problems = fields.List(fields.Nested(ProblemItemSchema), required=True)
    audit = fields.List(fields.Nested(AuditItemSchema), required=True)
    pdf = fields.Nested(PdfSchema, required=True)


class RecordCancelledSchema(Schema):
    """``data`` of ``share.record_cancelled``: Sharewise has stopped working on the record."""

    schema = fields.String(required=True, validate=validate.OneOf(_SCHEMA_IDS))
    schema_version = fields.Integer(required=True, validate=validate.OneOf([1, 2]))
    record_id = fields.String(required=True)
    request_id = fields.String(required=True)
    tenant = fields.String(required=True)
    status = fields.String(required=True, validate=validate.Equal("cancelled"))
    cancelled_at = fields.String(required=True, metadata={"format": "date-time"})
    reason = fields.String(required=True, allow_none=True)
    audit = fields.List(fields.Nested(AuditItemSchema), required=True)


class RecordOverdueSchema(Schema):
    """``data`` of ``share.record_overdue``: the record passed its due time and someone was
    chased."""

    request_id = fields.String(required=True)
    record_id = fields.String(required=True)
    due_at = fields.String(required=True, metadata={"format": "date-time"})
    escalated_to = fields.String(required=True,
                                 validate=validate.OneOf(["practitioner", "manager"]))


#: event type -> (component name, schema of its ``data``)
OUTBOUND = {
    RECORD_COMPLETED: ("RecordCompleted", RecordCompletedSchema),
    RECORD_CANCELLED: ("RecordCancelled", RecordCancelledSchema),
    RECORD_OVERDUE: ("RecordOverdue", RecordOverdueSchema),
}
