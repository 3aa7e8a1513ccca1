"""Golden-rule completeness: every rule in the spec has a passing and a failing case."""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from sharewise.forms.spec import load_spec
from sharewise.forms.validate import Problem, rule_of, validate

TODAY = date(2026, 3, 20)

# A complete record: shared with consent, the person told, advice sought.
COMPLETE = {
    "record_id": "rec_0001",
    "host_request_id": "REQ-1",
    "case_reference": "C-1",
    "subject_name": "Zoë Łódź",
    "subject_date_of_birth": "2015-04-01",
    "subject_type": "child",
    "request_direction": "inbound_request",
    "urgency": "urgent",
    "requested_at": "2026-03-10T09:30:00+00:00",
    "practitioner_name": "Sam Practitioner",
    "practitioner_email": "sam@example.org",
    "practitioner_team": "Early help",
    "manager_name": "Morgan Manager",
    "manager_email": "morgan@example.org",
    "requester_organisation": "Northtown School",
    "recipient_organisation": "Northtown School",
    "recipient_name": "Alex Lead",
    "recipient_role": "Designated safeguarding lead",
    "purpose": "To plan support at school.",
    "information_requested": "Attendance concerns and current plan.",
    "lawful_basis": "consent",
    "statutory_gateway": None,
    "special_category": "no",
    "special_category_condition": None,
    "subject_informed": "yes",
    "not_informed_reason": None,
    "views_expressed": "Parent agreed and asked to be kept informed.",
    "advice_sought": "yes",
    "advice_from": "Jo Adviser, safeguarding lead",
    "advice_summary": "Share the plan only.",
    "identity_withheld": False,
    "consent": "given",
    "consent_given_by": "Parent, mother",
    "consent_date": "2026-03-11",
    "consent_not_sought_reason": None,
    "capacity_assessment": None,
    "public_interest_justification": None,
    "risk_if_shared": "Low: school already aware.",
    "risk_if_not_shared": "Support could be delayed.",
    "check_necessary": True,
    "check_proportionate": True,
    "check_relevant": True,
    "check_accurate": True,
    "check_timely": True,
    "check_secure": True,
    "information_shared": "The support plan.",
    "sharing_method": "secure_email",
    "shared_on": "2026-03-12",
    "decision": "share",
    "decision_reasons": "Consent given and sharing helps the child.",
    "decided_by": "Sam Practitioner",
    "decided_on": "2026-03-12",
    "manager_endorsement": None,
}

NOT_SHARED = {
    **COMPLETE,
    "decision": "not_share",
    "lawful_basis": None,
    "consent": "refused",
    "consent_given_by": None,
    "check_necessary": False,
    "check_proportionate": False,
    "check_relevant": False,
    "check_accurate": False,
    "check_timely": False,
    "check_secure": False,
    "information_shared": None,
    "sharing_method": None,
    "shared_on": None,
}

NO_CONSENT_SHARE = {
    **COMPLETE,
    "lawful_basis": "public_task",
    "statutory_gateway": "Children Act 1989 s47",
    "consent": "not_sought",
    "consent_given_by": None,
    "consent_date": None,
    "consent_not_sought_reason": "Asking would put the child at risk.",
    "public_interest_justification": "Risk of significant harm outweighs the duty of confidence.",
    "manager_endorsement": "endorsed",
}


def problems_of(values, today=TODAY):
    return {p.field: p for p in validate(values, today=today)}


def assert_problem(values, field, rule, today=TODAY):
    found = problems_of(values, today)
    assert field in found, f"expected a problem for {field}, got {sorted(found)}"
    problem = found[field]
    assert problem.rule == rule
    assert problem.message.startswith(f"Rule {rule}: ")
    assert len(problem.message) > len("Rule 1: ") + 10
    return problem


def assert_no_problem(values, field, today=TODAY):
    found = problems_of(values, today)
    assert field not in found, found.get(field)


@pytest.mark.parametrize("record", [COMPLETE, NOT_SHARED, NO_CONSENT_SHARE],
                         ids=["share_with_consent", "not_shared", "shared_without_consent"])
def test_complete_records_have_no_problems(record):
    assert validate(record, today=TODAY) == []


def test_empty_record_is_a_normal_incomplete_outcome():
    problems = validate({}, today=TODAY)
    spec = load_spec()
    always = {f.name for f in spec.fields if f.required}
    assert always <= {p.field for p in problems}
    assert all(isinstance(p, Problem) and 1 <= p.rule <= 7 for p in problems)


# ---------------------------------------------------------------- always-required fields


ALWAYS = [f for f in load_spec().fields if f.required]


@pytest.mark.parametrize("field", ALWAYS, ids=[f.name for f in ALWAYS])
@pytest.mark.parametrize("blank", [None, "", "   "], ids=["none", "empty", "spaces"])
def test_always_required_field_missing_fails(field, blank):
    values = {**COMPLETE, field.name: blank}
    problem = assert_problem(values, field.name, rule_of(field))
    assert problem.message == f"Rule {rule_of(field)}: {field.message}"


def test_section_zero_fields_belong_to_rule_7():
    problem = assert_problem({**COMPLETE, "purpose": None}, "purpose", 7)
    assert problem.message == "Rule 7: say what the information is for."


@pytest.mark.parametrize(
    "field,rule",
    [("special_category", 1), ("subject_informed", 2), ("advice_sought", 3), ("consent", 4),
     ("risk_if_shared", 5), ("risk_if_not_shared", 5), ("decision", 7),
     ("decision_reasons", 7), ("decided_by", 7), ("decided_on", 7)],
)
def test_always_required_fields_pass_when_given(field, rule):
    assert_no_problem(COMPLETE, field)
    assert_problem({**COMPLETE, field: None}, field, rule)


# ---------------------------------------------------------------- conditional rules


CONDITIONAL = [
    # (id, field, rule, failing values, passing values)
    ("lawful_basis_when_share", "lawful_basis", 1,
     {**COMPLETE, "lawful_basis": None},
     {**NOT_SHARED, "lawful_basis": None}),
    ("lawful_basis_when_share_part", "lawful_basis", 1,
     {**COMPLETE, "decision": "share_part", "lawful_basis": None},
     {**COMPLETE, "decision": "share_part"}),
    ("gateway_legal_obligation", "statutory_gateway", 1,
     {**NO_CONSENT_SHARE, "lawful_basis": "legal_obligation", "statutory_gateway": None},
     {**NO_CONSENT_SHARE, "lawful_basis": "legal_obligation"}),
    ("gateway_public_task", "statutory_gateway", 1,
     {**NO_CONSENT_SHARE, "statutory_gateway": "  "},
     {**NO_CONSENT_SHARE, "lawful_basis": "vital_interests", "statutory_gateway": None}),
    ("special_category_condition", "special_category_condition", 1,
     {**COMPLETE, "special_category": "yes"},
     {**COMPLETE, "special_category": "yes",
      "special_category_condition": "DPA 2018 Sch 1 para 18"}),
    ("not_informed_reason", "not_informed_reason", 2,
     {**COMPLETE, "subject_informed": "no"},
     {**COMPLETE, "subject_informed": "no", "views_expressed": None,
      "not_informed_reason": "Telling them would alert the alleged abuser."}),
    ("views_expressed", "views_expressed", 2,
     {**COMPLETE, "views_expressed": None},
     {**COMPLETE, "subject_informed": "after_sharing", "views_expressed": None}),
    ("advice_from", "advice_from", 3,
     {**COMPLETE, "advice_from": None},
     {**COMPLETE, "advice_sought": "no", "advice_from": None, "advice_summary": None}),
    ("advice_summary", "advice_summary", 3,
     {**COMPLETE, "advice_summary": ""},
     {**COMPLETE, "advice_sought": "no", "advice_from": None, "advice_summary": None}),
    ("consent_given_by", "consent_given_by", 4,
     {**COMPLETE, "consent_given_by": None},
     {**NOT_SHARED, "consent_given_by": None}),
    ("consent_date_given", "consent_date", 4,
     {**COMPLETE, "consent_date": None},
     COMPLETE),
    ("consent_date_refused", "consent_date", 4,
     {**NOT_SHARED, "consent": "refused", "consent_date": None},
     {**NOT_SHARED, "consent": "not_sought", "consent_date": None,
      "consent_not_sought_reason": "Not appropriate."}),
    ("consent_date_withdrawn", "consent_date", 4,
     {**NOT_SHARED, "consent": "withdrawn", "consent_date": None},
     {**NOT_SHARED, "consent": "withdrawn"}),
    ("consent_not_sought_reason", "consent_not_sought_reason", 4,
     {**NO_CONSENT_SHARE, "consent_not_sought_reason": None},
     {**NO_CONSENT_SHARE, "consent": "refused", "consent_not_sought_reason": None,
      "consent_date": "2026-03-11"}),
    ("capacity_assessment", "capacity_assessment", 4,
     {**NO_CONSENT_SHARE, "consent": "lacks_capacity", "consent_not_sought_reason": None},
     {**NO_CONSENT_SHARE, "consent": "lacks_capacity", "consent_not_sought_reason": None,
      "capacity_assessment": "Assessed under the Mental Capacity Act on 09/03/2026."}),
    ("public_interest_share", "public_interest_justification", 4,
     {**NO_CONSENT_SHARE, "public_interest_justification": None},
     {**NO_CONSENT_SHARE, "decision": "not_share", "lawful_basis": None,
      "public_interest_justification": None, "manager_endorsement": None,
      **{k: NOT_SHARED[k] for k in NOT_SHARED if k.startswith("check_")},
      "information_shared": None, "sharing_method": None, "shared_on": None}),
    ("public_interest_share_part_refused", "public_interest_justification", 4,
     {**NO_CONSENT_SHARE, "decision": "share_part", "consent": "refused",
      "consent_date": "2026-03-11", "consent_not_sought_reason": None,
      "public_interest_justification": None},
     {**COMPLETE, "decision": "share_part"}),
    ("manager_endorsement", "manager_endorsement", 7,
     {**NO_CONSENT_SHARE, "manager_endorsement": None},
     {**NO_CONSENT_SHARE, "manager_endorsement": "not_endorsed"}),
    ("manager_endorsement_not_needed_with_consent", "manager_endorsement", 7,
     {**NO_CONSENT_SHARE, "consent": "withdrawn", "consent_date": "2026-03-11",
      "consent_not_sought_reason": None, "manager_endorsement": None},
     COMPLETE),
    ("information_shared", "information_shared", 6,
     {**COMPLETE, "information_shared": None},
     NOT_SHARED),
    ("sharing_method", "sharing_method", 6,
     {**COMPLETE, "decision": "share_part", "sharing_method": None},
     {**COMPLETE, "sharing_method": "phone"}),
    ("shared_on", "shared_on", 6,
     {**COMPLETE, "shared_on": None},
     NOT_SHARED),
    ("lawful_basis_consent_needs_consent_given", "consent", 4,
     {**NO_CONSENT_SHARE, "lawful_basis": "consent"},
     COMPLETE),
]


@pytest.mark.parametrize("case", CONDITIONAL, ids=[c[0] for c in CONDITIONAL])
def test_conditional_rule(case):
    _, field, rule, failing, passing = case
    problem = assert_problem(failing, field, rule)
    spec_field = load_spec()[field]
    if spec_field.message and field != "consent":
        assert problem.message == f"Rule {rule}: {spec_field.message}"
    assert_no_problem(passing, field)


def test_consent_as_basis_message_comes_from_the_check():
    problem = assert_problem({**NO_CONSENT_SHARE, "lawful_basis": "consent"}, "consent", 4)
    assert "lawful basis" in problem.message
    assert problem.message == f"Rule 4: {load_spec().checks[0].message}"


CHECKBOXES = [f.name for f in load_spec().fields if f.name.startswith("check_")]


def test_there_are_six_checkboxes():
    assert len(CHECKBOXES) == 6


@pytest.mark.parametrize("name", CHECKBOXES)
@pytest.mark.parametrize("decision", ["share", "share_part"])
def test_each_checkbox_must_be_ticked_when_sharing(name, decision):
    record = {**COMPLETE, "decision": decision}
    assert_no_problem(record, name)
    problem = assert_problem({**record, name: False}, name, 6)
    assert problem.message.startswith("Rule 6: you shared, so confirm")
    assert_problem({**record, name: None}, name, 6)


@pytest.mark.parametrize("name", CHECKBOXES)
def test_checkboxes_not_needed_when_not_sharing(name):
    assert_no_problem({**NOT_SHARED, name: False}, name)


def test_all_six_unticked_gives_six_problems():
    record = {**COMPLETE, **{n: False for n in CHECKBOXES}}
    assert {p.field for p in validate(record, today=TODAY)} == set(CHECKBOXES)


# ---------------------------------------------------------------- dates


DATED = [("decided_on", 7), ("shared_on", 6), ("consent_date", 4)]


@pytest.mark.parametrize("field,rule", DATED)
def test_date_not_before_request(field, rule):
    # requested 10/03/2026; the day before fails, the same day passes
    problem = assert_problem({**COMPLETE, field: "2026-03-09"}, field, rule)
    assert "09/03/2026" in problem.message and "10/03/2026" in problem.message
    assert_no_problem({**COMPLETE, field: "2026-03-10"}, field)


@pytest.mark.parametrize("field,rule", DATED)
def test_date_not_in_future(field, rule):
    problem = assert_problem({**COMPLETE, field: "2026-03-21"}, field, rule)
    assert "future" in problem.message and "20/03/2026" in problem.message
    assert_no_problem({**COMPLETE, field: "2026-03-20"}, field)


def test_request_date_is_taken_in_london_around_midnight():
    # 23:30 UTC on 14 June is 00:30 on 15 June in London (BST)
    record = {**COMPLETE, "requested_at": "2026-06-14T23:30:00+00:00",
              "consent_date": "2026-06-15", "shared_on": "2026-06-15"}
    today = date(2026, 6, 15)
    assert_problem({**record, "decided_on": "2026-06-14"}, "decided_on", 7, today)
    assert_no_problem({**record, "decided_on": "2026-06-15"}, "decided_on", today)
    # in winter (GMT) 23:30 UTC stays on the same day
    winter = {**COMPLETE, "requested_at": "2026-01-14T23:30:00+00:00",
              "consent_date": "2026-01-14", "shared_on": "2026-01-14"}
    assert_no_problem({**winter, "decided_on": "2026-01-14"}, "decided_on", date(2026, 1, 20))


def test_default_today_is_london_date_just_after_midnight():
    record = {**COMPLETE, "requested_at": "2026-06-14T08:00:00+00:00",
              "consent_date": "2026-06-14", "shared_on": "2026-06-14",
              "decided_on": "2026-06-15"}
    # 23:30 UTC on 14 June: already 15 June in London, so "15/06/2026" is not in the future
    with time_machine.travel("2026-06-14T23:30:00+00:00", tick=False):
        assert "decided_on" not in {p.field for p in validate(record)}
    # 22:30 UTC on 14 June is 23:30 in London: 15 June is still tomorrow
    with time_machine.travel("2026-06-14T22:30:00+00:00", tick=False):
        problems = {p.field: p for p in validate(record)}
        assert problems["decided_on"].rule == 7
        assert "future" in problems["decided_on"].message


# ---------------------------------------------------------------- values of the wrong shape


def test_bad_values_are_problems_not_exceptions():
    record = {**COMPLETE, "decided_on": "31/02/2026", "decision": "maybe",
              "purpose": "x" * 2001, "check_secure": "perhaps"}
    found = problems_of(record)
    assert found["decided_on"].message.startswith("Rule 7: ")
    assert "DD/MM/YYYY" in found["decided_on"].message
    assert found["decision"].message == (
        "Rule 7: \u201cDecision\u201d must be one of: Share, Share in part, Do not share."
    )
    assert "at most 2000 characters" in found["purpose"].message
    assert found["check_secure"].rule == 6
    # one problem per field
    assert len(validate(record, today=TODAY)) == len(found)


def test_unknown_keys_are_ignored():
    assert validate({**COMPLETE, "not_a_field": 1}, today=TODAY) == []


def test_one_record_leaves_nothing_for_the_next_in_any_thread():
    """The schema instance is reused per thread: results match a fresh validation, in order
    and side by side, and an incomplete record's problems never reach a complete one."""
    from concurrent.futures import ThreadPoolExecutor

    incomplete = {**COMPLETE, "decision": None, "decided_on": "2026-03-15"}
    records = [COMPLETE, incomplete, {}, NOT_SHARED, incomplete, COMPLETE] * 8
    expected = [validate(r, today=TODAY) for r in records]
    assert expected[0] == [] and expected[1] and expected[-1] == []
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda r: validate(r, today=TODAY), records)) == expected
    later = date(2026, 3, 12)  # before decided_on: ``today`` is taken afresh each call
    assert "future" in problems_of(incomplete, later)["decided_on"].message
    assert "decided_on" not in problems_of(incomplete)


def test_problem_as_dict():
    problem = Problem("decision", 7, "Rule 7: record your decision.")
    assert problem.as_dict() == {"field": "decision", "rule": 7,
                                 "message": "Rule 7: record your decision."}


def test_every_required_rule_in_the_spec_is_exercised_here():
    """A new conditional field in the spec must get a case in CONDITIONAL."""
    spec = load_spec()
    conditional = {f.name for f in spec.fields if f.required_when}
    covered = {c[1] for c in CONDITIONAL} | set(CHECKBOXES)
    assert conditional <= covered, conditional - covered
    dated = {f.name for f in spec.fields if f.not_before or f.not_future}
    assert dated == {d[0] for d in DATED}
    assert {c.field for c in spec.checks} <= covered
