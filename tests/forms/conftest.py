"""Shared fixtures for the form tests: a complete, valid host prefill with Unicode names."""

from __future__ import annotations

import copy
from typing import Any

import pytest

SAMPLE_PREFILL: dict[str, Any] = {
    "record_id": "rec_01JD8Z6T4QK9W3M5N7P2R4S6V8",
    "host_request_id": "REQ-2026-004217",
    "case_reference": "CASE/88/1942-Ω",
    "subject_name": "Zoë Łódź-Ņikolajeva",
    "subject_date_of_birth": "2014-03-09",
    "subject_type": "child",
    "request_direction": "inbound_request",
    "urgency": "urgent",
    "requested_at": "2026-11-20T09:30:00+00:00",
    "practitioner_name": "Αλέξανδρος Παπαδόπουλος",
    "practitioner_email": "alexandros.p@example.org",
    "practitioner_team": "Children's Services — North Locality",
    "manager_name": "Дмитрий Соколов",
    "manager_email": "d.sokolov@example.org",
    "requester_organisation": "Riverside Primary School",
    "recipient_organisation": "Northshire Police",
    "recipient_name": "Siân Ó Briain",
    "recipient_role": "Detective Sergeant, Child Protection",
    "purpose": (
        "To support a strategy discussion under section 47 of the Children Act 1989 after "
        "the school raised concerns about the child's attendance and injuries seen in class."
    ),
    "information_requested": (
        "Attendance records for the autumn term.\n"
        "Notes of the conversations with the class teacher on 12 and 18 November.\n"
        "Any previous referrals held by the school."
    ),
    "decided_by": "Αλέξανδρος Παπαδόπουλος",
}


@pytest.fixture
def sample_prefill() -> dict[str, Any]:
    """A complete, valid host prefill dict (a fresh copy per test)."""
    return copy.deepcopy(SAMPLE_PREFILL)
