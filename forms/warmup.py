"""The warm-up samples: completed decision forms that reader workers read once at start.

A reader worker (:mod:`forms.sandbox`) parses a few PDFs before it takes uploads, so that a real
upload does not pay for first-time work: pypdf's code paths for an incremental update, the
reader's value conversions, and the reader's reuse cache of parsed objects (see
:mod:`forms.reader`), which only learns the objects a viewer writes the same way for every
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

Run ``python -m forms.warmup`` after rebuilding the template (``python -m forms.template``);
it rewrites the committed samples. Building needs the test extras (pypdfium2, pikepdf) and
the test suite's PDFium filler; reading the samples needs neither, only :mod:`forms.reader`.
The build is deterministic (the prefill and PDFium's incremental save carry no timestamps;
PDFium's random second ``/ID`` is replaced by one derived from the file's bytes), and
``tests/forms/test_warmup.py`` checks that the committed samples are what a fresh build
gives, so a spec or template change cannot leave a stale sample behind.

Importing this module is cheap (no PDF libraries): the worker uses :data:`WARMUP_PATHS`,
:data:`WARMUP_RECORD_ID` and :func:`warmup_shown`.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "SPARSE_ANSWERS",
    "WARMUP_PATHS",
    "WARMUP_PREFILL",
    "WARMUP_RECORD_ID",
    "build_samples",
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
    from forms.reader import expected_display

    return expected_display(WARMUP_RECORD_ID, WARMUP_PREFILL)


def build_samples() -> tuple[bytes, bytes]:
    """Prefill the committed template for the warm-up record and complete it through PDFium,
    once fully and once sparsely (the contents of :data:`WARMUP_PATHS`, in order).

    Needs pypdfium2 and pikepdf (the test extras) and the test suite's filler.
    """
    from forms.prefill import prefill

    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:  # ``tests`` is importable from the project root
        sys.path.insert(0, root)
    from tests.forms.viewers import ENTERED, fill_with_pdfium

    prefilled = prefill(WARMUP_PREFILL).pdf
    return (_fixed_id(fill_with_pdfium(prefilled, ENTERED)),
            _fixed_id(fill_with_pdfium(prefilled, SPARSE_ANSWERS)))


_LAST_ID = re.compile(rb"(/ID\s*\[\s*<[0-9A-Fa-f]+>\s*<)([0-9A-Fa-f]+)(>\s*\]\s*>>\s*startxref"
                      rb"\s+\d+\s+%%EOF\s*)$")


def _fixed_id(data: bytes) -> bytes:
    """``data`` with the second ``/ID`` of its last trailer derived from its other bytes.

    PDFium writes a random one on every save (the only part of its output that changes), so
    the committed sample could not otherwise be rebuilt byte for byte. Same length, after the
    cross-reference table: no offset moves.
    """
    found = _LAST_ID.search(data)
    if found is None:
        raise ValueError("no trailer /ID where PDFium writes it")
    digest = hashlib.md5(data[: found.start(2)], usedforsecurity=False).hexdigest().upper()
    digest = digest.encode("ascii")[: len(found[2])].ljust(len(found[2]), b"0")
    return data[: found.start(2)] + digest + data[found.end(2):]


def main() -> None:
    """Rewrite the committed samples from the current template and spec."""
    for path, data in zip(WARMUP_PATHS, build_samples(), strict=True):
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
