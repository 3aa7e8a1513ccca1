"""The OpenAPI 3.1 document of Sharewise's HTTP API, served at ``GET /openapi.json``.

Built with apispec from the marshmallow schemas the service validates with (the events a host
sends: :mod:`sharewise.plugin.records.schemas`) and from the answer schemas below, which say
what the service sends back; the suite checks live answers against them (schemathesis) so the
document cannot drift from the code. It covers the webhook endpoint, the practitioner's links
(page, PDF, upload), the status link and the health check. A host developer's view of it, with
examples, is ``docs/events.md``.

The webhook endpoint's security is a Standard Webhooks signature (three headers), described as
parameters: OpenAPI has no scheme for an HMAC over the body.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata
from typing import Any

from flask import Blueprint, Response, jsonify
from marshmallow import INCLUDE, Schema, fields, validate

from sharewise.plugin.demo import sample_event
from sharewise.plugin.outbox.schemas import OUTBOUND
from sharewise.plugin.records.schemas import DATA_SCHEMAS, EVENT_TYPES

bp = Blueprint("openapi", __name__)

PROBLEM_JSON = "application/problem+json"
STATUSES = ("awaiting_completion", "incomplete", "complete", "cancelled")


class ProblemSchema(Schema):
    """An RFC 9457 problem: what went wrong, in words a client can show (RFC 9457 lets a
    problem carry more members; these are the ones Sharewise sends)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={"description": "urn:sharewise:problem:<slug>"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.List(fields.Dict(), metadata={
        "description": "Per field: {field, message} (422 of an event), or the upload's code."})
    code = fields.String(metadata={"description": "Why an upload was refused (empty, not_pdf, "
                                                  "malformed, wrong_record...)."})
    record_id = fields.String(metadata={"description": "The record an upload was for."})
    record_status = fields.String(validate=validate.OneOf(STATUSES))
    version = fields.Integer(metadata={"description": "The upload's version number (a "
                                                      "refused upload is kept too)."})


class MissingSchema(Schema):
    """One thing the record still needs."""

    rule = fields.Integer(metadata={"description": "The golden rule (1-7)."})
    field = fields.String()
    message = fields.String()


class LinksSchema(Schema):
    """The answer to ``share.requested``: the record and its practitioner links (bearer
    credentials: give them to the practitioner only)."""

    record_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    form_url = fields.Url(required=True)
    form_pdf_url = fields.Url(required=True)
    upload_url = fields.Url(required=True)
    status_url = fields.Url(required=True)
    due_at = fields.String()
    warnings = fields.List(fields.String(), metadata={
        "description": "What was accepted but will not show as sent (a character the form's font "
                       "cannot draw...)."})


class StatusSchema(Schema):
    """A record's status (``GET /status/<token>``)."""

    record_id = fields.String(required=True)
    schema_version = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    missing = fields.List(fields.Nested(MissingSchema), required=True)
    due_at = fields.String(allow_none=True)
    completed_at = fields.String(allow_none=True)
    purged_at = fields.String(allow_none=True)


class UploadAnswerSchema(Schema):
    """What an accepted upload made of the record (``POST /upload/<token>``)."""

    record_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    version = fields.Integer(required=True)
    missing = fields.List(fields.Nested(MissingSchema), required=True)


def _event_schema(event_type: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{_data_name(event_type)}"}
    return {"type": "object", "required": ["type", "timestamp", "data"],
            "properties": {"type": {"const": event_type},
                           "timestamp": {"type": "string", "format": "date-time"},
                           "data": ref}}


def _data_name(event_type: str) -> str:
    return "".join(part.title() for part in event_type.replace(".", "_").split("_"))


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): {"$ref": f"#/components/responses/Problem{c}"} for c in codes}


_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "The signed token of a link Sharewise handed out."}
_PAGE = {"text/html": {"schema": {"type": "string"}}}
_REASONS = {400: "Bad request", 401: "Invalid signature", 403: "Forbidden", 404: "Not found",
            409: "Conflict", 410: "Gone", 413: "Body too large", 415: "Unsupported media type",
            422: "Not acceptable", 429: "Too many failed attempts", 503: "Unavailable"}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (a plain ``dict``, built once per process; apispec is imported
    here, so a process that never serves the document never loads it)."""
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    spec = APISpec(title="Sharewise", version=_version(), openapi_version="3.1.0",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Information-sharing decision records for case "
                                        "management systems."})
    for event_type in EVENT_TYPES:
        spec.components.schema(_data_name(event_type), schema=DATA_SCHEMAS[event_type]())
    for name, schema in (("Problem", ProblemSchema), ("Links", LinksSchema),
                         ("Status", StatusSchema), ("UploadAnswer", UploadAnswerSchema)):
        spec.components.schema(name, schema=schema)
    for code, reason in _REASONS.items():
        spec.components.response(f"Problem{code}", {
            "description": reason,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}},
                        "text/html": {"schema": {"type": "string"}}}})

    signature = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"},
                  "description": text} for name, text in (
        ("webhook-id", "The delivery's id (a repeat with the same id is answered again)."),
        ("webhook-timestamp", "Unix seconds; at most WEBHOOK_TOLERANCE from Sharewise's clock."),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> (Standard "
                              "Webhooks), with the tenant's webhook secret."))]
    events = {"oneOf": [_event_schema(t) for t in EVENT_TYPES]}
    example = {**sample_event(request_id="REQ-4711"), "timestamp": "2026-11-24T09:12:40Z"}
    json_answer = {"content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Links"}}}}
    spec.path("/webhooks/{tenant}", operations={"post": {
        "operationId": "receiveEvent", "summary": "An event from a host",
        "parameters": [{"name": "tenant", "in": "path", "required": True,
                        "schema": {"type": "string"}}, *signature],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": events, "examples": {"share.requested": {"value": example}}}}},
        "responses": {
            "201": {"description": "Record created", **json_answer},
            "200": {"description": "Done (cancelled, uploaded), or a repeated delivery "
                                   "answered again", "content": {"application/json": {
                                       "schema": {"type": "object"}}}},
            **_problems(400, 401, 404, 409, 410, 413, 415, 422, 429, 503)}}})
    spec.path("/form/{token}", operations={
        "get": {"operationId": "formPage", "summary": "The practitioner's page",
                "parameters": [_TOKEN],
                "responses": {"200": {"description": "The page", "content": _PAGE},
                              **_problems(403, 404, 410)}},
        "post": {"operationId": "formUpload", "summary": "Upload from the page",
                 "parameters": [_TOKEN],
                 "requestBody": {"content": {"multipart/form-data": {"schema": {
                     "type": "object", "properties": {"file": {
                         "type": "string", "contentMediaType": "application/pdf"}}}}}},
                 "responses": {"200": {"description": "The page with the result",
                                       "content": _PAGE},
                               **_problems(400, 403, 404, 409, 410, 413, 415, 422, 503)}}})
    spec.path("/form/{token}/online", operations={
        "get": {"operationId": "onlineForm",
                "summary": "The form to fill in the browser (generated from the field spec)",
                "parameters": [_TOKEN],
                "responses": {"200": {"description": "The form, holding the last version",
                                      "content": _PAGE},
                              **_problems(403, 404, 410)}},
        "post": {"operationId": "onlineSave",
                 "summary": "Save the online form: a draft (action=draft-<section>) or a "
                            "submission (action=submit), as the record's next version",
                 "parameters": [_TOKEN],
                 "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "properties": {"action": {"type": "string"}},
                     "additionalProperties": {"type": "string"}}}}},
                 "responses": {"200": {"description": "The form again with what was saved, "
                                                      "or the page once complete",
                                       "content": _PAGE},
                               **_problems(400, 403, 404, 409, 410, 413, 415)}}})
    spec.path("/form/{token}/pdf", operations={"get": {
        "operationId": "formPdf", "summary": "The form to fill (or the final record)",
        "parameters": [_TOKEN],
        "responses": {"200": {"description": "The PDF", "content": {"application/pdf": {
            "schema": {"type": "string", "contentMediaType": "application/pdf"}}}},
            **_problems(403, 404, 410, 503)}}})
    spec.path("/upload/{token}", operations={"post": {
        "operationId": "upload", "summary": "Upload the completed form",
        "parameters": [_TOKEN],
        "requestBody": {"content": {
            "application/pdf": {"schema": {"type": "string",
                                           "contentMediaType": "application/pdf"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {
                "type": "string", "contentMediaType": "application/pdf"}}}}}},
        "responses": {"200": {"description": "Read and checked", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/UploadAnswer"}},
            "text/html": {"schema": {"type": "string"}}}},
            **_problems(400, 403, 404, 409, 410, 413, 415, 422, 503)}}})
    spec.path("/status/{token}", operations={"get": {
        "operationId": "status", "summary": "The record's status", "parameters": [_TOKEN],
        "responses": {"200": {"description": "The status", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Status"}}}},
            **_problems(403, 404)}}})
    spec.path("/healthz", operations={"get": {
        "operationId": "healthz", "summary": "The process is alive",
        "responses": {"200": {"description": "Alive", "content": {"application/json": {
            "schema": {"type": "object"}}}}}}})
    check = {"type": "object", "required": ["ok", "detail", "ms"], "properties": {
        "ok": {"type": "boolean"}, "detail": {"type": "string"}, "ms": {"type": "number"}}}
    readiness = {"application/json": {"schema": {
        "type": "object", "required": ["status", "checks"], "properties": {
            "status": {"enum": ["ready", "not_ready"]},
            "checks": {"type": "object", "additionalProperties": check}}}}}
    spec.path("/readyz", operations={"get": {
        "operationId": "readyz", "summary": "Database, migrations, broker and file store",
        "responses": {"200": {"description": "Ready", "content": readiness},
                      "503": {"description": "A check failed (named)", "content": readiness}}}})
    spec.path("/metrics", operations={"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (text format)",
        "responses": {"200": {"description": "The metrics", "content": {"text/plain": {
            "schema": {"type": "string"}}}}}}})
    spec.path("/openapi.json", operations={"get": {
        "operationId": "openapi", "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {
            "application/json": {"schema": {"type": "object"}}}}}}})
    for name, schema in OUTBOUND.values():
        spec.components.schema(name, schema=schema)
    doc = spec.to_dict()
    doc["webhooks"] = {event_type: _outbound(event_type, name)
                       for event_type, (name, _) in OUTBOUND.items()}
    return doc


def _outbound(event_type: str, name: str) -> dict[str, Any]:
    """One event Sharewise posts to the tenant's ``callback_url`` (OpenAPI 3.1 ``webhooks``)."""
    return {"post": {
        "operationId": event_type.replace(".", "_"),
        "summary": f"{event_type}, posted to the tenant's callback_url",
        "description": "Signed with the tenant's callback_secret (Standard Webhooks: "
                       "webhook-id, webhook-timestamp, webhook-signature). Retried until "
                       "the host answers 2xx; see docs/events.md.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["type", "timestamp", "data"],
            "additionalProperties": False,
            "properties": {"type": {"const": event_type},
                           "timestamp": {"type": "string", "format": "date-time"},
                           "data": {"$ref": f"#/components/schemas/{name}"}}}}}},
        "responses": {"2XX": {"description": "Received: Sharewise stops sending it."}}}}


GUIDE_START = "<!-- schemas:start (generated by `sharewise openapi --guide FILE`) -->"
GUIDE_END = "<!-- schemas:end -->"


def _inline(node: Any, components: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` to a component replaced by the component itself."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(components[ref.rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


def event_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (2020-12) of every event's whole body, both directions, by type."""
    doc = document()
    components = doc["components"]["schemas"]
    body = doc["paths"]["/webhooks/{tenant}"]["post"]["requestBody"]["content"]
    out: dict[str, dict[str, Any]] = {}
    for option in body["application/json"]["schema"]["oneOf"]:
        out[option["properties"]["type"]["const"]] = _inline(option, components)
    for event_type, hook in doc["webhooks"].items():
        schema = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        out[event_type] = _inline(schema, components)
    return out


def guide_schemas() -> str:
    """The schemas section of ``docs/host-integration.md`` (between its markers)."""
    parts = []
    for event_type, schema in event_schemas().items():
        direction = "host to Sharewise" if event_type in EVENT_TYPES else "Sharewise to host"
        parts += [f"### `{event_type}` ({direction})", "", "```json",
                  json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema",
                              **schema}, indent=2), "```", ""]
    return "\n".join(parts).rstrip() + "\n"


def _version() -> str:
    try:
        return metadata.version("sharewise")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "0"


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The document, as JSON."""
    resp = jsonify(document())
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp
