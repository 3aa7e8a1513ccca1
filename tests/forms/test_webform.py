"""forms/webform.py and the text conversion it shares with the PDF read-back: a submitted
text at the very edge of the calendar is a field problem, never an error."""

from __future__ import annotations

import pytest

from sharewise.forms.spec import load_spec
from sharewise.forms.validate import validate
from sharewise.forms.values import from_display
from sharewise.forms.webform import read_web_form, web_form

EDGES = ["0001-01-01T00:00Z", "9999-12-31T23:59-12:00", "0001-01-01T00:30+01:00"]


@pytest.mark.parametrize("text", EDGES)
def test_a_moment_outside_the_calendar_is_a_field_problem(text):
    # in UTC or the form's zone these would be year 0 or 10000: Python cannot hold them
    values, problems, raw = read_web_form({"decided_at": text}, version=2)
    assert values["decided_at"] is None
    assert [p.field for p in problems] == ["decided_at"]
    assert "date and time" in problems[0].message
    assert raw == {"decided_at": text}
    validate(values, version=2)  # what follows a save: no OverflowError on the way
    shown = web_form(values, version=2, raw=raw)
    [field] = [f for s in shown for f in s.fields if f.name == "decided_at"]
    assert field.value == text
    # the PDF read-back converts through the same function
    with pytest.raises(ValueError):
        from_display(load_spec(2)["decided_at"], text)


def test_the_calendar_edges_a_zone_can_hold_are_values():
    values, problems, _ = read_web_form({"decided_at": "01/01/0001 00:00"}, version=2)
    assert problems == [] and values["decided_at"].startswith("0001-01-01T00:00")
