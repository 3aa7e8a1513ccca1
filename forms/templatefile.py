"""The committed template file and the field text sizes it was built with (run-time constants).

:mod:`sharewise.forms.template` builds ``forms/decision_record.pdf`` (a build tool, run as
``python -m sharewise.forms.template``); everything that runs in the service (prefill, the
field font, the reader sandbox) takes the template's location and its fields' ``/DA`` sizes
from here, so no run-time module imports the builder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MULTILINE_SIZE", "TEMPLATE_PATH", "TEXT_SIZE"]

#: The fillable template, built from ``decision_record.toml`` and committed.
TEMPLATE_PATH = Path(__file__).with_name("decision_record.pdf")

#: ``/DA`` font size of single-line text fields and drop-downs, in points.
TEXT_SIZE = 10.0
#: ``/DA`` font size of multi-line text fields, in points.
MULTILINE_SIZE = 9.0
