"""The field specification of the decision record, loaded from ``decision_record.toml``.

Everything else in :mod:`forms` (template, schemas, prefill, reader, validator, docs) is
derived from the objects this module returns, so a field is added or changed in exactly one
place: the TOML file beside this module.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

#: The spec of each schema version. A record keeps the version it was created with for its
#: whole life (its form, reader and rules); new records get :data:`LATEST`.
SPEC_PATHS = {
    1: Path(__file__).with_name("decision_record.toml"),
    2: Path(__file__).with_name("decision_record_v2.toml"),
}
SPEC_PATH = SPEC_PATHS[1]
LATEST = 2

FieldType = Literal["text", "multiline", "date", "datetime", "email", "choice", "checkbox"]
_TYPES = {"text", "multiline", "date", "datetime", "email", "choice", "checkbox"}
_PREFILL = {None, "host", "host_editable"}
# an option's export value is also a PDF name (a radio button's on-state): keep it plain
_CODE = re.compile(r"[A-Za-z0-9_]+")


#: field -> accepted values, all of which must hold (AND)
Conditions = tuple[tuple[str, tuple[str, ...]], ...]
_REMINDERS = {"review", "inform"}


def code_of(value: Any) -> Any:
    """A value as conditions name it: a ticked check box is ``"true"``, an empty one ``"false"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def holds(alternatives: tuple[Conditions, ...], values: Mapping[str, Any]) -> bool:
    """Whether any alternative holds (each: every named field has one of its values)."""
    return any(
        all(code_of(values.get(other)) in allowed for other, allowed in conditions)
        for conditions in alternatives
    )


class SpecError(ValueError):
    """The spec file is inconsistent (a programming error, caught by the tests)."""


@dataclass(frozen=True)
class Option:
    """One choice of a radio group or drop-down: its export value (the JSON code) and label."""

    value: str
    label: str


@dataclass(frozen=True)
class FieldSpec:
    """One field of the form."""

    name: str
    label: str
    type: FieldType
    section: int
    tooltip: str
    widget: str | None = None
    options: tuple[Option, ...] = ()
    prefill: str | None = None
    read_only: bool = False
    optional: bool = False
    max_length: int | None = None
    required: bool = False
    #: alternatives, any of which makes the field required (each an AND of conditions)
    required_when: tuple[Conditions, ...] = ()
    message: str | None = None
    not_before: str | None = None
    not_future: bool = False
    #: the field must be empty unless ``required_when`` holds; ``stray`` says so
    only_when: bool = False
    stray: str | None = None
    #: short marker printed on the label: when the field is needed ("required", "if you share")
    marker: str | None = None
    #: a choice whose options are completed per tenant when the form is prefilled
    tenant_options: bool = False
    #: a date the decision sets that becomes a reminder to the practitioner: its kind
    #: ("review": look at a decision not to share again; "inform": tell the person)
    reminder: str | None = None

    @property
    def option_values(self) -> tuple[str, ...]:
        """The export values of a choice field, in form order."""
        return tuple(o.value for o in self.options)

    @property
    def prefilled(self) -> bool:
        """Whether the host supplies this field's initial value."""
        return self.prefill is not None

    def label_for(self, value: str) -> str:
        """The label shown for a choice's export value (the value itself if unknown)."""
        for option in self.options:
            if option.value == value:
                return option.label
        return value


@dataclass(frozen=True)
class Section:
    """A block of the form: 0 is the case details, 1..7 the golden rules."""

    number: int
    title: str
    guidance: str
    #: the rule's short name in messages, "Rule 4 (consent): ..." (v1 has none: "Rule 4: ...")
    name: str | None = None


@dataclass(frozen=True)
class Check:
    """A cross-field rule: when any alternative of ``when`` holds, ``field`` must take one of
    ``allowed`` (if given) and none of ``refused``."""

    rule: int
    field: str
    when: tuple[Conditions, ...]
    allowed: tuple[str, ...]
    message: str
    refused: tuple[str, ...] = ()

    def breaks(self, value: str) -> bool:
        """Whether ``value`` is one this check does not accept (the condition holding)."""
        return (bool(self.allowed) and value not in self.allowed) or value in self.refused


@dataclass(frozen=True)
class FormSpec:
    """The whole form: schema id, sections, fields in tab order, cross-field checks."""

    schema: str
    title: str
    timezone: str
    sections: tuple[Section, ...]
    fields: tuple[FieldSpec, ...]
    checks: tuple[Check, ...] = ()
    version: int = 1
    #: the field whose value means the information has been shared: messages' ``{share}``
    #: reads "shared" when it has one, "will share" before
    shared_field: str | None = None
    #: fields the final record's summary page shows (by label), in this order
    summary: tuple[str, ...] = ()
    #: an upload whose values meet this is escalated to the manager at once (an endorsement
    #: refused); the record stays open
    escalate_when: tuple[Conditions, ...] = ()

    def escalates(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` call for the manager to be told at once."""
        return holds(self.escalate_when, values)

    def reminder_dates(self, values: Mapping[str, Any]) -> list[tuple[str, date]]:
        """(kind, date) of every date in ``values`` that becomes a reminder."""
        out = []
        for f in self.fields:
            value = values.get(f.name)
            if f.reminder and value:
                out.append((f.reminder, value if isinstance(value, date)
                            else date.fromisoformat(str(value))))
        return out
    _by_name: dict[str, FieldSpec] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> FieldSpec:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """All field names in form (tab) order."""
        return tuple(f.name for f in self.fields)

    def section(self, number: int) -> Section:
        """The section with this number."""
        return next(s for s in self.sections if s.number == number)

    def in_section(self, number: int) -> tuple[FieldSpec, ...]:
        """The fields of one section, in form order."""
        return tuple(f for f in self.fields if f.section == number)

    @cached_property
    def prefilled_fields(self) -> tuple[FieldSpec, ...]:
        """Fields whose initial value comes from the host (worked out once per spec)."""
        return tuple(f for f in self.fields if f.prefilled)

    @property
    def read_only_fields(self) -> tuple[FieldSpec, ...]:
        """Fields the practitioner cannot change."""
        return tuple(f for f in self.fields if f.read_only)


def _conditions(raw: dict | list | None, where: str) -> tuple[Conditions, ...]:
    """A table of conditions (AND), or an array of such tables (any of them: OR)."""
    if not raw:
        return ()
    tables = raw if isinstance(raw, list) else [raw]
    alternatives = []
    for table in tables:
        if not isinstance(table, dict) or not table:
            raise SpecError(f"{where}: a condition is a table of field = [values]")
        out = []
        for key, values in table.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise SpecError(f"{where}: condition on {key!r} must be a list of strings")
            out.append((key, tuple(values)))
        alternatives.append(tuple(out))
    return tuple(alternatives)


def _condition_values(form: FormSpec, name: str, other: str, values: tuple[str, ...]) -> None:
    if other not in form:
        raise SpecError(f"{name}: a condition names unknown field {other!r}")
    target = form[other]
    known = ("true", "false") if target.type == "checkbox" else target.option_values
    if known and not set(values) <= set(known):
        raise SpecError(f"{name}: a condition uses unknown values of {other!r}")


def parse_spec(data: dict) -> FormSpec:
    """Build and cross-check a :class:`FormSpec` from the parsed TOML mapping."""
    fields = []
    for raw in data["fields"]:
        raw = dict(raw)
        name = raw.get("name", "?")
        options = tuple(Option(**o) for o in raw.pop("options", []))
        when = _conditions(raw.pop("required_when", None), name)
        spec = FieldSpec(options=options, required_when=when, **raw)
        if spec.type not in _TYPES:
            raise SpecError(f"{name}: unknown type {spec.type!r}")
        if spec.prefill not in _PREFILL:
            raise SpecError(f"{name}: unknown prefill {spec.prefill!r}")
        if spec.type == "choice" and (not options or spec.widget not in {"radio", "combo"}):
            raise SpecError(f"{name}: a choice needs options and widget radio|combo")
        if not all(_CODE.fullmatch(o.value) for o in options):
            raise SpecError(f"{name}: option values are codes of letters, digits and _")
        if (spec.required or spec.required_when) and not spec.message:
            raise SpecError(f"{name}: a required field needs a message")
        if spec.only_when and not (spec.required_when and spec.stray):
            raise SpecError(f"{name}: only_when needs required_when and a stray message")
        if data.get("version", 1) >= 2 and (spec.required or spec.required_when) and (
            not spec.marker
        ):
            raise SpecError(f"{name}: a required field needs a marker on its label")
        if not spec.tooltip:
            raise SpecError(f"{name}: every field needs a tooltip")
        fields.append(spec)
    checks = tuple(
        Check(
            rule=c["rule"],
            field=c["field"],
            when=_conditions(c.get("when"), c["field"]),
            allowed=tuple(c.get("allowed", ())),
            refused=tuple(c.get("refused", ())),
            message=c["message"],
        )
        for c in data.get("checks", [])
    )
    sections = tuple(Section(**s) for s in data["sections"])
    form = FormSpec(
        schema=data["schema"],
        title=data["title"],
        timezone=data["timezone"],
        sections=sections,
        fields=tuple(fields),
        checks=checks,
        version=data.get("version", 1),
        shared_field=data.get("shared_field"),
        summary=tuple(data.get("summary", ())),
        escalate_when=_conditions(data.get("escalate_when"), "escalate_when"),
    )
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise SpecError("duplicate field names")
    for f in fields:
        for alternative in f.required_when:
            for other, values in alternative:
                _condition_values(form, f.name, other, values)
        if f.not_before and f.not_before not in form:
            raise SpecError(f"{f.name}: not_before names unknown field {f.not_before!r}")
        if f.section not in {s.number for s in sections}:
            raise SpecError(f"{f.name}: unknown section {f.section}")
    unknown = [name for name in form.summary if name not in form]
    if unknown:
        raise SpecError(f"summary names unknown fields {unknown}")
    if form.shared_field and form.shared_field not in form:
        raise SpecError(f"shared_field names unknown field {form.shared_field!r}")
    for alternative in form.escalate_when:
        for other, values in alternative:
            _condition_values(form, "escalate_when", other, values)
    for f in fields:
        if f.reminder and (f.reminder not in _REMINDERS or f.type != "date"):
            raise SpecError(f"{f.name}: reminder is one of {sorted(_REMINDERS)}, on a date")
    for c in checks:
        if c.field not in form:
            raise SpecError(f"check names unknown field {c.field!r}")
        if bool(c.allowed) == bool(c.refused):
            raise SpecError(f"check on {c.field!r}: give allowed or refused, not both")
        for alternative in c.when:
            for other, values in alternative:
                _condition_values(form, f"check on {c.field}", other, values)
    return form


def load_spec(version: int = 1) -> FormSpec:
    """The form spec of a schema version (parsed once per process)."""
    try:
        path = SPEC_PATHS[version]
    except KeyError:
        raise SpecError(f"no form of schema version {version!r}") from None
    return _load(path)


#: (code, label) choices a tenant adds to its forms' ``tenant_options`` fields
TenantOptions = tuple[tuple[str, str], ...]


@cache
def form_for(version: int = 1, tenant_options: TenantOptions = ()) -> FormSpec:
    """The spec of a record's form: its version's, with the choices its tenant offered added
    to every ``tenant_options`` field (after the spec's own, such as "None")."""
    form = load_spec(version)
    if not tenant_options:
        return form
    added = tuple(Option(code, label) for code, label in tenant_options)
    fields = tuple(
        replace(f, options=f.options + added) if f.tenant_options else f for f in form.fields
    )
    return replace(form, fields=fields, _by_name={})


@cache
def _load(path: Path) -> FormSpec:
    with open(path, "rb") as fh:
        return parse_spec(tomllib.load(fh))
