"""The committed template file and the field text sizes it was built with (run-time constants).

:mod:`sharewise.forms.template` builds ``forms/decision_record.pdf`` (a build tool, run as
``python -m sharewise.forms.template``); everything that runs in the service (prefill, the
field font, the reader sandbox) takes the template's location and its fields' ``/DA`` sizes
from here, so no run-time module imports the builder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "FOOTER_TAG", "INTRO_TAG", "MULTILINE_SIZE", "TEMPLATE_PATH", "TEMPLATE_PATHS", "TEXT_SIZE",
    "template_path",
]

#: The fillable template of each schema version, built from its spec and committed.
TEMPLATE_PATHS = {
    1: Path(__file__).with_name("decision_record.pdf"),
    2: Path(__file__).with_name("decision_record_v2.pdf"),
}
#: The version 1 template.
TEMPLATE_PATH = TEMPLATE_PATHS[1]


def template_path(version: int = 1) -> Path:
    """The committed template of a schema version (``KeyError`` for an unknown one)."""
    return TEMPLATE_PATHS[version]

#: Marked-content tags (version 2 templates) around what only the blank form needs: the
#: fill-in instructions and each page's footer, which the final record drops and renumbers.
INTRO_TAG = "SharewiseIntro"
FOOTER_TAG = "SharewiseFooter"

#: ``/DA`` font size of single-line text fields and drop-downs, in points.
TEXT_SIZE = 10.0
#: ``/DA`` font size of multi-line text fields, in points.
MULTILINE_SIZE = 9.0
