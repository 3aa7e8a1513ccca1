"""The decision form as a web form: the PDF's field spec, as plain HTML controls.

Some practitioners have no PDF reader that fills forms (locked-down laptops, tablets, phones).
For them the same form is offered in the browser. Nothing here is written by hand per field:
:func:`web_form` turns a record's spec (its schema version, with its tenant's choices; see
:func:`sharewise.forms.spec.form_for`) and its values into sections of :class:`WebField`, which
a template renders as labelled inputs, one section per golden rule; :func:`read_web_form` takes
the submitted text back to normalised values through :func:`sharewise.forms.values.from_display`,
the same conversion the PDF read-back uses, so a value means the same whichever way it came.
Checking the values is :func:`sharewise.forms.validate.validate`, as for an upload.

Controls by field type: ``text`` an ``<input>``, ``multiline`` a ``<textarea>``, ``date`` an
``<input type="date">`` (``YYYY-MM-DD``; ``DD/MM/YYYY`` typed into a browser without a date
picker is read too), ``datetime`` an ``<input type="datetime-local">`` in the form's time zone,
``email`` an ``<input type="email">``, a ``radio`` choice a group of radio buttons, a ``combo``
choice a ``<select>``, ``checkbox`` a check box. Read-only fields (the case details the host
supplied) are shown as text and never read back from a submission.

Limits: a submitted text that cannot be a value of its field (a date that is not a date, a
choice the form does not offer) becomes no value plus a :class:`~sharewise.forms.validate.Problem`
saying what the field needs; the text itself is returned in ``raw`` so the page can show it
again. Names the spec does not know are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sharewise.forms.spec import FieldSpec, TenantOptions, form_for
from sharewise.forms.validate import Problem, describe_invalid, rule_of
from sharewise.forms.values import form_zone, from_display, to_display

#: the HTML control of each field type (choices: by widget)
CONTROLS = {"text": "text", "multiline": "textarea", "date": "date", "datetime": "datetime-local",
            "email": "email", "checkbox": "checkbox"}


@dataclass(frozen=True)
class WebField:
    """One field as the page shows it."""

    name: str
    id: str  # the element id; a radio group's first button has it (error links point there)
    label: str
    control: str  # text | textarea | date | datetime-local | email | radio | select | checkbox
    hint: str
    marker: str | None
    read_only: bool
    value: str  # what the control holds ("" for none); a check box: "true" when ticked
    shown: str  # a read-only field's value as the PDF shows it
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a choice
    max_length: int | None = None
    error: str | None = None

    @property
    def checked(self) -> bool:
        """Whether a check box is ticked."""
        return self.value == "true"


@dataclass(frozen=True)
class WebSection:
    """One section: 0 the case details, 1..7 a golden rule."""

    number: int
    title: str
    guidance: str
    fields: tuple[WebField, ...]

    @property
    def errors(self) -> int:
        """How many of its fields have a problem."""
        return sum(1 for f in self.fields if f.error)

    @property
    def editable(self) -> bool:
        """Whether the practitioner has anything to fill in here."""
        return any(not f.read_only for f in self.fields)


def field_id(name: str) -> str:
    """The element id of a field's control (the first radio button of a group)."""
    return f"f-{name}"


def control_value(spec: FieldSpec, value: Any) -> str:
    """A normalised value as an HTML control holds it (``""`` for none)."""
    if value is None or value == "":
        return ""
    if spec.type == "checkbox":
        return "true" if value is True else ""
    if spec.type == "date":
        return value.isoformat() if isinstance(value, date) else str(value)[:10]
    if spec.type == "datetime":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if moment.tzinfo is not None:
            moment = moment.astimezone(form_zone())
        return moment.strftime("%Y-%m-%dT%H:%M")
    return str(value)


def _shown(spec: FieldSpec, value: Any) -> str:
    try:
        shown = to_display(spec, value)
    except ValueError:
        return str(value)
    if shown is None or shown is False:
        return ""
    if shown is True:
        return "Yes"
    return spec.label_for(shown) if spec.type == "choice" else str(shown)


def web_form(values: Mapping[str, Any], *, version: int, tenant_options: TenantOptions = (),
             problems: Sequence[Mapping[str, Any]] = (),
             raw: Mapping[str, str] | None = None) -> list[WebSection]:
    """The sections of a record's form holding ``values`` (normalised), with each problem's
    message on its field (``problems`` as a version stores them: ``{"field", "message", ...}``);
    ``raw``: submitted text to show again where it could not be read."""
    form = form_for(version, tuple(tuple(pair) for pair in tenant_options))
    errors: dict[str, str] = {}
    for p in problems:
        errors.setdefault(str(p["field"]), str(p["message"]))
    raw = raw or {}
    sections = []
    for section in form.sections:
        fields = []
        for spec in form.in_section(section.number):
            value = values.get(spec.name)
            control = (("radio" if spec.widget == "radio" else "select")
                       if spec.type == "choice" else CONTROLS[spec.type])
            shown_value = raw.get(spec.name) if spec.name in raw else control_value(spec, value)
            fields.append(WebField(
                name=spec.name, id=field_id(spec.name), label=spec.label, control=control,
                hint=spec.tooltip, marker=spec.marker, read_only=spec.read_only,
                value=shown_value or "", shown=_shown(spec, value) if spec.read_only else "",
                options=tuple((o.value, o.label) for o in spec.options),
                max_length=spec.max_length, error=errors.get(spec.name)))
        sections.append(WebSection(section.number, section.title, section.guidance,
                                   tuple(fields)))
    return sections


def read_web_form(submitted: Mapping[str, str], *, version: int,
                  tenant_options: TenantOptions = ()
                  ) -> tuple[dict[str, Any], list[Problem], dict[str, str]]:
    """The normalised values of every field the practitioner may change, from submitted text.

    Returns ``(values, problems, raw)``: an absent check box is ``False`` and an absent or
    blank field ``None``; ``problems`` has one entry per text that could not be read (its value
    is then ``None``), and ``raw`` that text, to show again.
    """
    form = form_for(version, tuple(tuple(pair) for pair in tenant_options))
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    raw: dict[str, str] = {}
    for spec in form.fields:
        if spec.read_only:
            continue
        text = submitted.get(spec.name)
        if spec.type == "checkbox":
            values[spec.name] = from_display(spec, text == "true")
            continue
        try:
            values[spec.name] = from_display(spec, text)
        except ValueError:
            values[spec.name] = None
            raw[spec.name] = str(text)
            problems.append(Problem(spec.name, rule_of(spec), describe_invalid(spec, text, form)))
    return values, problems, raw
