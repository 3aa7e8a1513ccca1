"""The field specification of the decision record, loaded from ``decision_record.toml``.

Everything else in :mod:`forms` (template, schemas, prefill, reader, validator, docs) is
derived from the objects this module returns, so a field is added or changed in exactly one
place: the TOML file beside this module.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

SPEC_PATH = Path(__file__).with_name("decision_record.toml")

FieldType = Literal["text", "multiline", "date", "datetime", "email", "choice", "checkbox"]
_TYPES = {"text", "multiline", "date", "datetime", "email", "choice", "checkbox"}
_PREFILL = {None, "host", "host_editable"}
# an option's export value is also a PDF name (a radio button's on-state): keep it plain
_CODE = re.compile(r"[A-Za-z0-9_]+")


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
    required_when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    message: str | None = None
    not_before: str | None = None
    not_future: bool = False

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


@dataclass(frozen=True)
class Check:
    """A cross-field rule: when ``when`` holds, ``field`` must take one of ``allowed``."""

    rule: int
    field: str
    when: tuple[tuple[str, tuple[str, ...]], ...]
    allowed: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class FormSpec:
    """The whole form: schema id, sections, fields in tab order, cross-field checks."""

    schema: str
    title: str
    timezone: str
    sections: tuple[Section, ...]
    fields: tuple[FieldSpec, ...]
    checks: tuple[Check, ...] = ()
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


def _conditions(raw: dict | None, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not raw:
        return ()
    out = []
    for key, values in raw.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SpecError(f"{where}: condition on {key!r} must be a list of strings")
        out.append((key, tuple(values)))
    return tuple(out)


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
        if not spec.tooltip:
            raise SpecError(f"{name}: every field needs a tooltip")
        fields.append(spec)
    checks = tuple(
        Check(
            rule=c["rule"],
            field=c["field"],
            when=_conditions(c.get("when"), c["field"]),
            allowed=tuple(c["allowed"]),
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
    )
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise SpecError("duplicate field names")
    for f in fields:
        for other, values in f.required_when:
            if other not in form:
                raise SpecError(f"{f.name}: required_when names unknown field {other!r}")
            known = form[other].option_values
            if known and not set(values) <= set(known):
                raise SpecError(f"{f.name}: required_when uses unknown values of {other!r}")
        if f.not_before and f.not_before not in form:
            raise SpecError(f"{f.name}: not_before names unknown field {f.not_before!r}")
        if f.section not in {s.number for s in sections}:
            raise SpecError(f"{f.name}: unknown section {f.section}")
    for c in checks:
        if c.field not in form:
            raise SpecError(f"check names unknown field {c.field!r}")
    return form


@cache
def load_spec(path: Path = SPEC_PATH) -> FormSpec:
    """Load the form spec (cached: parsed once per process)."""
    with open(path, "rb") as fh:
        return parse_spec(tomllib.load(fh))
