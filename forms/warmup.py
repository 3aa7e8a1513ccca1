"""The warm-up samples: completed decision forms that reader workers read once at start.

A reader worker (:mod:`forms.sandbox`) parses a few PDFs before it takes uploads, so that a real
upload does not pay for first-time work: pypdf's code paths for an incremental update, the
reader's value conversions, and the reader's reuse cache of parsed objects (see
:mod:`sharewise.forms.reader`), which only learns the objects a viewer writes the same way for every
record from a file that viewer saved. The blank template teaches it none of those, so the
worker also reads two samples (:data:`WARMUP_PATHS`), each the template prefilled by
:func:`forms.prefill.prefill` for the made-up record ``warm-up`` (:data:`WARMUP_PREFILL`, no
real person's data), then completed and saved through PDFium's form-fill API as Chrome saves
it (an incremental update):

- ``forms/warmup_sample.pdf``: every answer filled in (the test suite's complete set,
  ``tests/forms/viewers.py``: ``ENTERED``, read back as ``NORMALISED``);
- ``forms/warmup_sample_sparse.pdf``: only the radio buttons set, each group to another option
  (:data:`SPARSE_ANSWERS`). PDFium rewrites a widget it did not fill (and every button of a
  group it set) in its own way, the same for every record; a partly completed upload holds
  those objects, and a complete one the buttons of other options.

Run ``python -m tests.forms.build_warmup`` after rebuilding the template
(``python -m sharewise.forms.template``); it rewrites the committed samples. Building needs the test
extras (pypdfium2, pikepdf) and the test suite's PDFium filler, which is why the builder lives
under ``tests/``; reading the samples needs neither, only :mod:`forms.reader`. PDFium appends
its changes to the prefilled file as an incremental update, so each sample starts with the
exact bytes :func:`sharewise.forms.prefill.prefill` makes for :data:`WARMUP_PREFILL`;
``tests/forms/test_warmup.py`` checks that, so a spec, template or prefill change cannot leave
a stale sample behind (a new PDFium release that saves differently does not make them stale).

Importing this module is cheap (no PDF libraries): the worker uses :data:`WARMUP_PATHS`,
:data:`WARMUP_RECORD_ID` and :func:`warmup_shown`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "SPARSE_ANSWERS",
    "WARMUP_PATHS",
    "WARMUP_PREFILL",
    "WARMUP_RECORD_ID",
    "warmup_shown",
]

#: The committed samples, in the order a worker reads them: complete, then sparse.
WARMUP_PATHS = (
    Path(__file__).with_name("warmup_sample.pdf"),
    Path(__file__).with_name("warmup_sample_sparse.pdf"),
)
WARMUP_RECORD_ID = "warm-up"

#: The sparse sample's answers: each radio group set to an option the complete sample's
#: answers (``ENTERED``) do not pick; nothing typed, no box ticked.
SPARSE_ANSWERS: dict[str, str] = {
    "lawful_basis": "consent",
    "special_category": "no",
    "subject_informed": "yes",
    "advice_sought": "no",
    "consent": "given",
    "sharing_method": "secure_portal",
    "decision": "share",
    "manager_endorsement": "not_endorsed",
}

#: The sample's host prefill, already normalised (what :func:`forms.prefill.normalise_prefill`
#: returns for it): made-up values with some non-ASCII text, as real names have.
WARMUP_PREFILL: dict[str, Any] = {
    "record_id": WARMUP_RECORD_ID,
    "host_request_id": "WARM-UP-0001",
    "case_reference": "WARM-UP/00/0000-Ω",
    "subject_name": "Sample Child Zoë Ńame",
    "subject_date_of_birth": "2015-01-01",
    "subject_type": "child",
    "request_direction": "inbound_request",
    "urgency": "routine",
    "requested_at": "2026-01-01T09:00:00+00:00",
    "practitioner_name": "Sample Practitioner Siân",
    "practitioner_email": "practitioner@example.org",
    "practitioner_team": "Sample Team — Warm-up",
    "manager_name": "Sample Manager Дмитрий",
    "manager_email": "manager@example.org",
    "requester_organisation": "Sample School",
    "recipient_organisation": "Sample Police Service",
    "recipient_name": "Sample Recipient",
    "recipient_role": "Sample role",
    "purpose": "A made-up request that reader workers read once when they start.",
    "information_requested": "Sample information.\nA second line.",
    "decided_by": "Sample Practitioner Siân",
}


def warmup_shown() -> dict[str, str]:
    """The read-only fields' text as the sample shows them (the reader's tamper reference)."""
    from sharewise.forms.reader import expected_display

    return expected_display(WARMUP_RECORD_ID, WARMUP_PREFILL)
