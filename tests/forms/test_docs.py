"""docs/fields.md is generated from the spec and committed up to date."""

from __future__ import annotations

import dataclasses

from sharewise.forms.docs import DOCS_PATH, main, render
from sharewise.forms.spec import load_spec


def test_committed_field_reference_matches_the_spec():
    assert DOCS_PATH.read_text(encoding="utf-8") == render(), (
        "docs/fields.md is stale: run .venv/bin/python -m sharewise.forms.docs"
    )


def test_every_field_and_message_is_documented():
    text = render()
    spec = load_spec()
    for f in spec.fields:
        assert f"| `{f.name}` |" in text
        if f.message:
            assert f.message in text
        for option in f.options:
            assert f"`{option.value}` ({option.label})" in text
    for check in spec.checks:
        assert check.message in text


def test_a_spec_change_shows_in_the_docs():
    spec = load_spec()
    fields = list(spec.fields)
    fields[0] = dataclasses.replace(fields[0], label="Renamed for the test")
    changed = dataclasses.replace(spec, fields=tuple(fields), _by_name={})
    assert "Renamed for the test" in render(changed)
    assert "Renamed for the test" not in render()


def test_check_mode_reports_a_stale_file(tmp_path):
    stale = tmp_path / "fields.md"
    stale.write_text("old", encoding="utf-8")
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--output", str(stale)]) == 0
    assert main(["--check", "--output", str(stale)]) == 0
