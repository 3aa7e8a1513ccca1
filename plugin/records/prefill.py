"""Intake's side of the form library: check prefill values once; the PDF is made on demand.

Intake does not make the prefilled PDF. Making it (about 0.3 ms) and writing its 186 KB with
two fsyncs (about 1 ms) was a third of an intake's cost, for a file many records never need
before their first download. Instead :func:`check_prefill` validates the values with the form
library's own prefill schema (the same check :func:`forms.prefill.prefill` makes, so values
that pass here cannot be refused when the PDF is made; the values the event schema already
loaded through the form's own fields are not loaded twice, see ``trusted``), computes the
hash prefill embeds and the warnings prefill reports, and intake stores the values and the
hash. :func:`build_pdf`
makes the PDF from them: :func:`forms.prefill.fill` is deterministic, so these are the bytes
intake used to store. :func:`sharewise.plugin.records.services.prefilled_pdf` serves and keeps it.

Warnings without the PDF, identical to prefill's: a field's warnings depend only on its own
shown text (prefill lays fields out independently), so fields a cheap check clears are left
out and the rest are laid out by the real :func:`forms.prefill.fill` (those fields only, in
the same order), whose warnings are the answer. Cleared without layout:

* single-line text and e-mail: every character is in the embedded font (NFC, no control
  characters) and the advance width is at most that of the widest text
  :func:`forms.prefill.fill_detailed` drew unclipped in that field (measured once per process
  by bisection; only text wider than its box at the smallest size is clipped);
* multi-line text: the same for each paragraph against the widest one-line paragraph, and no
  more paragraphs than the box's measured line capacity (such text fits at the smallest size);
* a drop-down's option (its warnings computed once) and dates (``DD/MM/YYYY``: with tabular
  digits every date draws the same width, so the same warnings as a sample date).

:func:`warm_up` takes the measurements (about 0.15 s) at web start.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from sharewise.forms.fonts import field_font
from sharewise.forms.prefill import fill, fill_detailed
from sharewise.forms.prefill import normalise_prefill as normalise
from sharewise.forms.schemas import prefill_schema
from sharewise.forms.spec import load_spec
from sharewise.forms.values import values_hash

#: The character the probe repeats (narrow, so the measured limit is within 1.5 pt at 6 pt).
_PROBE_CHAR = "i"
_PROBE_MAX = 2048
_SINGLE_LINE = ("text", "email")


@dataclass(frozen=True)
class CheckedPrefill:
    """Prefill values the form library accepts: normalised, hashed, with prefill's warnings."""

    values: dict[str, Any]  # as :func:`sharewise.forms.prefill.normalise_prefill` returns them
    prefill_hash: str  # what :func:`sharewise.forms.prefill.prefill` embeds
    warnings: tuple[str, ...]  # what :func:`sharewise.forms.prefill.prefill` reports


def _schema() -> Any:
    """The form library's prefill schema (built once per process by :mod:`forms.schemas`)."""
    return prefill_schema()


def check_prefill(data: Mapping[str, Any], *, trusted: Collection[str] = ()) -> CheckedPrefill:
    """Validate ``data`` as :func:`sharewise.forms.prefill.prefill` would; its hash and warnings.

    Raises :class:`forms.prefill.FormDataError` for values prefill would refuse. ``trusted``:
    fields whose values the form's own fields loaded already (intake passes
    :func:`sharewise.plugin.records.schemas.trusted_prefill_fields`); they are not loaded again (see
    :func:`sharewise.forms.prefill.normalise_prefill`'s ``loaded``), which saves intake about 40 us.
    """
    values = normalise(data, loaded=trusted)
    return CheckedPrefill(values, values_hash(values), warnings(values))


def build_pdf(values: Mapping[str, Any], prefill_hash: str) -> bytes:
    """The prefilled PDF of stored values (the bytes :func:`forms.prefill.prefill` makes)."""
    normalised = normalise(values)
    return fill(normalised, record_id=normalised["record_id"], prefill_hash=prefill_hash).pdf


def build_pdf_unchecked(values: Mapping[str, Any], record_id: str, prefill_hash: str) -> bytes:
    """The PDF of stored values without the schema check (values a later schema refuses)."""
    return fill(values, record_id=record_id, prefill_hash=prefill_hash).pdf


@cache
def _coverage() -> frozenset[str]:
    return frozenset(chr(cp) for cp in field_font().cmap)


@cache
def _single_line_limits() -> dict[str, float]:
    """Per single-line text field: the widest advance (at size 1000) fill draws unclipped."""
    step = field_font().width(_PROBE_CHAR, 1000)
    names = [f.name for f in load_spec().prefilled_fields if f.type in _SINGLE_LINE]
    return {n: k * step for n, k in _bisect(lambda n, k: _PROBE_CHAR * k, names).items()}


def _bisect(probe: Any, names: list[str]) -> dict[str, int]:
    """Per field, the largest ``k`` (up to :data:`_PROBE_MAX`) for which ``probe(name, k)``
    is drawn unclipped by :func:`sharewise.forms.prefill.fill_detailed` (one fill per round)."""
    low = dict.fromkeys(names, 0)  # known unclipped
    high = dict.fromkeys(names, _PROBE_MAX + 1)  # known clipped (or beyond the probe)
    while any(high[n] - low[n] > 1 for n in names):
        mid = {n: (low[n] + high[n]) // 2 for n in names if high[n] - low[n] > 1}
        _, clipped = fill_detailed({n: probe(n, k) for n, k in mid.items()}, record_id="probe")
        for n, k in mid.items():
            if n in clipped:
                high[n] = k
            else:
                low[n] = k
    return low


@cache
def _multiline_limits() -> dict[str, tuple[int, float]]:
    """Per multi-line field: (lines, width) such that text of at most that many paragraphs,
    each no wider than width (advance at size 1000), is drawn unclipped.

    ``lines``: the most one-word paragraphs fill draws unclipped (each is one line at any
    size, so this is the box's line capacity at the smallest size). ``width``: the widest
    single word that still fits as the last of those lines (wider wraps onto one line too
    many). A paragraph no wider than that is one line, so such text fits at the smallest
    size, and fill only clips text that does not.
    """
    font = field_font()
    step = font.width(_PROBE_CHAR, 1000)
    names = [f.name for f in load_spec().prefilled_fields if f.type == "multiline"]
    lines = _bisect(lambda n, k: "\n".join([_PROBE_CHAR] * k), names)
    names = [n for n in names if lines[n] >= 1]
    width = _bisect(lambda n, k: "\n".join([_PROBE_CHAR] * (lines[n] - 1) + [_PROBE_CHAR * k]),
                    names)
    return {n: (lines[n], width[n] * step) for n in names}


@cache
def _date_warnings() -> dict[str, tuple[str, ...]]:
    """Per date / date-time field, its warnings for every value, when they cannot differ.

    A date is shown as ``DD/MM/YYYY`` (``DD/MM/YYYY HH:MM``): same length and separators for
    every value, so when all ten digits are equally wide (tabular digits) every date draws
    the same width and gets the same warnings as a sample date. Otherwise: none known here.
    """
    font = field_font()
    if len({font.width(d, 1000) for d in "0123456789"}) != 1:
        return {}
    samples = {"date": "2000-01-01", "datetime": "2000-01-01T00:00:00+00:00"}
    return {
        f.name: fill({f.name: samples[f.type]}, record_id="probe").warnings
        for f in load_spec().prefilled_fields if f.type in samples
    }


def _text_clear(value: str, limit: float, coverage: frozenset[str]) -> bool:
    font = field_font()
    return (coverage.issuperset(value) and unicodedata.is_normalized("NFC", value)
            and font.width(value, 1000) <= limit)


def _multiline_clear(value: str, limits: tuple[int, float], coverage: frozenset[str]) -> bool:
    max_lines, width = limits
    paragraphs = value.split("\n")
    return len(paragraphs) <= max_lines and all(
        _text_clear(p, width, coverage) for p in paragraphs)


def warnings(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The warnings :func:`forms.prefill.fill` reports for normalised ``values``, cheaply."""
    single, multi = _single_line_limits(), _multiline_limits()
    choices, dates = _drop_downs(), _date_warnings()
    coverage = _coverage()
    slow: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "" or value is False:
            continue
        if name in choices and not _choice_warnings(name, value):
            continue  # a drop-down's option: its warnings (none) known once per process
        if name in dates and not dates[name]:
            continue  # a date: the same (no) warnings for every value
        if isinstance(value, str):
            if name in single and _text_clear(value, single[name], coverage):
                continue  # every character drawn, narrower than a text fill drew unclipped
            if name in multi and _multiline_clear(value, multi[name], coverage):
                continue  # every character drawn, each paragraph one line, few enough lines
        slow[name] = value
    if not slow:
        return ()
    # the fields not cleared above, laid out by prefill itself, in the same order
    return fill(slow, record_id=str(values.get("record_id") or "")).warnings


@cache
def _drop_downs() -> frozenset[str]:
    return frozenset(f.name for f in load_spec().prefilled_fields
                     if f.type == "choice" and f.widget != "radio")


@cache
def _choice_warnings(name: str, value: str) -> tuple[str, ...]:
    """A drop-down's warnings for one of its (finitely many, validated) options."""
    return fill({name: value}, record_id="probe").warnings


def warm_up() -> None:
    """Measure the limits now (about 0.15 s, for example at web start), not on first intake."""
    _schema()
    _coverage()
    _single_line_limits()
    _multiline_limits()
    _date_warnings()
