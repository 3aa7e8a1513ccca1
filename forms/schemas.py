"""Marshmallow schemas derived from the field spec.

``prefill_schema()`` validates the host-supplied values that go into a new form (every
``prefill`` field of the spec); ``field_for()`` gives the marshmallow field for any spec field,
so other schemas (the service's event schema, the validator) are built from the same source.
"""

from __future__ import annotations

from functools import cache

from marshmallow import RAISE, Schema, fields, validate

from sharewise.forms.spec import FieldSpec, FormSpec, load_spec


def field_for(spec: FieldSpec, *, required: bool = False) -> fields.Field:
    """The marshmallow field that loads one spec field's normalised value."""
    kwargs: dict = {"required": required, "allow_none": not required}
    length = validate.Length(min=1 if required else 0, max=spec.max_length)
    if spec.type == "checkbox":
        return fields.Boolean(**kwargs)
    if spec.type == "choice":
        return fields.String(validate=validate.OneOf(spec.option_values), **kwargs)
    if spec.type == "date":
        return fields.Date(**kwargs)
    if spec.type == "datetime":
        return fields.AwareDateTime(**kwargs)
    if spec.type == "email":
        return fields.Email(validate=length, **kwargs)
    return fields.String(validate=length, **kwargs)


@cache
def _prefill_schema_class(form: FormSpec) -> type[Schema]:
    declared = {
        f.name: field_for(f, required=not f.optional)
        for f in form.prefilled_fields
    }
    cls = Schema.from_dict(declared, name="PrefillSchema")
    cls.Meta.unknown = RAISE  # type: ignore[attr-defined]
    return cls


@cache
def _prefill_schema_instance(form: FormSpec) -> Schema:
    return _prefill_schema_class(form)(unknown=RAISE)


def prefill_schema(form: FormSpec | None = None) -> Schema:
    """The schema for the values the host prefills (unknown keys are an error).

    One instance per process and spec: marshmallow schemas keep no state between loads, and
    building one costs about 0.1 ms, which intake would otherwise pay on every event.
    """
    if form is None:  # the default spec without hashing it (a FormSpec hash walks 53 fields)
        return _default_prefill_schema()
    return _prefill_schema_instance(form)


@cache
def _default_prefill_schema() -> Schema:
    return _prefill_schema_instance(load_spec())


@cache
def prefill_schema_excluding(names: frozenset[str], version: int = 1) -> Schema:
    """The default prefill schema without the fields ``names`` (one instance per set).

    For values of which some were loaded by these fields already (see
    :func:`sharewise.forms.prefill.normalise_prefill`'s ``loaded``); the excluded names are unknown
    keys to it, so the caller leaves them out of what it loads.
    """
    return _prefill_schema_class(load_spec(version))(unknown=RAISE,
                                                     exclude=tuple(sorted(names)))
