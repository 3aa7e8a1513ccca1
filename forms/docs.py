"""Generate ``docs/fields.md``, the field reference, from the field spec.

``python -m sharewise.forms.docs`` rewrites the file; ``... --check`` exits 1 when the
committed file differs from what the spec gives (the tests run the same comparison). The
document lists every field of the decision record by section: JSON key / PDF field name,
label, type, choices with their export values, who fills it, and when it is required, with
the message the practitioner sees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sharewise.forms.spec import (
    LATEST,
    SPEC_PATHS,
    Check,
    Conditions,
    FieldSpec,
    FormSpec,
    load_spec,
)
from sharewise.forms.validate import rule_of, rule_prefix

__all__ = ["DOCS_PATH", "render", "main"]

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "fields.md"

_TYPES = {
    "text": "text",
    "multiline": "text, several lines",
    "date": "date (`DD/MM/YYYY` in the PDF, `YYYY-MM-DD` in JSON)",
    "datetime": "date and time (`DD/MM/YYYY HH:MM` London time in the PDF, ISO 8601 in JSON)",
    "email": "email address",
    "checkbox": "check box (`true` / `false`)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type(f: FieldSpec) -> str:
    if f.type == "choice":
        widget = "radio buttons" if f.widget == "radio" else "drop-down"
        options = "; ".join(f"`{o.value}` ({o.label})" for o in f.options)
        return f"choice, {widget}: {options}"
    text = _TYPES[f.type]
    if f.max_length and f.type in ("text", "multiline", "email"):
        text += f", at most {f.max_length} characters"
    return text


def _filled_by(f: FieldSpec) -> str:
    if f.prefill == "host":
        who = "case system, read-only" if f.read_only else "case system"
        return who + (" (may be absent)" if f.optional else "")
    if f.prefill == "host_editable":
        return "case system, practitioner may change"
    return "practitioner"


def _condition(alternatives: tuple[Conditions, ...]) -> str:
    texts = []
    for conditions in alternatives:
        parts = []
        for name, values in conditions:
            shown = " or ".join(f"`{v}`" for v in values)
            parts.append(f"`{name}` is {shown}")
        texts.append(" and ".join(parts))
    return "; or when ".join(texts)


def _check_text(check: Check) -> str:
    if check.allowed:
        return "must be " + " or ".join(f"`{v}`" for v in check.allowed)
    return "must not be " + " or ".join(f"`{v}`" for v in check.refused)


def _rule(f: FieldSpec, form: FormSpec) -> str:
    parts = []
    if f.read_only:
        parts.append(
            ("may be absent from" if f.optional else "required in") + " the host's event; "
            "an upload that changes it is refused as tampered"
        )
    if f.required:
        parts.append("must be ticked" if f.type == "checkbox" else "always")
    elif f.required_when:
        verb = "must be ticked" if f.type == "checkbox" else "required"
        parts.append(f"{verb} when {_condition(f.required_when)}")
    if f.only_when:
        parts.append("must be empty otherwise")
    if f.not_before:
        parts.append(f"not before `{f.not_before}`")
    if f.not_future:
        parts.append(f"not in the future ({form.timezone})")
    for check in form.checks:
        if check.field == f.name:
            parts.append(f"{_check_text(check)} when {_condition(check.when)}")
    if not parts:
        return "optional"
    text = "; ".join(parts)
    if f.message:
        text += f". Message: \u201c{rule_prefix(form, rule_of(f))}{f.message}\u201d"
    if f.only_when and f.stray:
        text += f" If filled when it does not apply: \u201c{f.stray}\u201d"
    return text


def _version_block(form: FormSpec) -> list[str]:
    lines = [
        f"## Version {form.version}: `{form.schema}`",
        "",
        f"{form.title}. Every field is both the JSON key in the host contract and the PDF form "
        f"field name. Dates are read in the form's time zone, {form.timezone}. A "
        "practitioner's upload is complete when no rule below is broken; each problem is "
        "reported as `{field, rule, message}` with the golden rule (1-7) of the field's "
        "section (case details count under rule 7).",
        "",
    ]
    if form.summary:
        shown = ", ".join(f"`{name}`" for name in form.summary)
        lines += [f"The final record's summary page also shows {shown}.", ""]
    for section in form.sections:
        fields = form.in_section(section.number)
        if not fields:
            continue
        lines += [f"### {section.title}", "", section.guidance, ""]
        lines += [
            "| field | label | type | filled by | required / rules |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in fields:
            label = f"{f.label} *({f.marker})*" if f.marker else f.label
            lines.append(
                f"| `{f.name}` | {_cell(label)} | {_cell(_type(f))} | {_filled_by(f)} "
                f"| {_cell(_rule(f, form))} |"
            )
        lines.append("")
    if form.checks:
        lines += [f"### Cross-field checks (version {form.version})", ""]
        for check in form.checks:
            lines.append(
                f"- Rule {check.rule}: when {_condition(check.when)}, `{check.field}` "
                f"{_check_text(check)}. Message: "
                f"\u201c{rule_prefix(form, check.rule)}{check.message}\u201d"
            )
        lines.append("")
    return lines


def render(form: FormSpec | None = None) -> str:
    """The markdown text of ``docs/fields.md``: every schema version, newest first (or only
    ``form``)."""
    forms = [form] if form is not None else [load_spec(v) for v in sorted(SPEC_PATHS,
                                                                         reverse=True)]
    lines = [
        "# Decision record fields",
        "",
        "<!-- Generated from forms/decision_record*.toml by `python -m sharewise.forms.docs`; "
        "do not edit by hand. -->",
        "",
        "A record keeps the schema version it was created with until it is complete: its "
        "form, the rules its uploads are checked against and the `fields` of its post-back "
        f"(which names the version in `schema` and `schema_version`). New records get version "
        f"{LATEST}; the tenants file's `form_version` can hold a tenant at an earlier one.",
        "",
    ]
    for one in forms:
        lines += _version_block(one)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write ``docs/fields.md`` (or with ``--check`` only compare it)."""
    parser = argparse.ArgumentParser(prog="python -m sharewise.forms.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DOCS_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m sharewise.forms.docs",
                  file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
