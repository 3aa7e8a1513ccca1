"""Schema version 2's rules (issue 16): twelve realistic scenarios, complete with the right
fields and incomplete without them, and a passing and a failing case for each rule."""

from __future__ import annotations

from datetime import datetime

import pytest

from sharewise.forms.spec import load_spec
from sharewise.forms.validate import validate
from tests.forms.v2_scenarios import LONDON, NOW, TODAY, scenarios

SCENARIOS = scenarios()


def check(values: dict) -> list:
    return validate(values, version=2, today=TODAY, now=NOW)


def problem(values: dict, field: str):
    found = [p for p in check(values) if p.field == field]
    assert found, f"no problem for {field}: {[p.field for p in check(values)]}"
    return found[0]


def without(values: dict, *names: str, **changes) -> dict:
    out = {k: v for k, v in values.items() if k not in names}
    out.update(changes)
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_is_complete(name):
    assert check(SCENARIOS[name]) == []


# (scenario, what is taken away or changed, field reported, rule, words of the message)
INCOMPLETE = [
    ("emergency_phone_share", {"drop": ["emergency_reason"]}, "emergency_reason", 6,
     "Rule 6 (what is shared): "),
    ("emergency_phone_share", {"drop": ["shared_at"]}, "shared_at", 6, "date and time"),
    ("emergency_phone_share", {"set": {"decision": "not_share"}}, "decision", 7,
     "emergency"),
    ("police_request_refused", {"drop": ["requester_told"]}, "requester_told", 7, "Rule 7"),
    ("police_request_refused", {"drop": ["requester_told_on"]}, "requester_told_on", 7, ""),
    ("police_request_refused", {"drop": ["review_on"]}, "review_on", 7, "review"),
    ("police_request_refused", {"drop": ["refusal_consulted"]}, "refusal_consulted", 7, ""),
    ("s47_without_consent", {"drop": ["legal_requirement_detail"]},
     "legal_requirement_detail", 4, "Rule 4 (consent): "),
    ("s47_without_consent", {"drop": ["manager_endorsement", "endorser_name",
                                      "endorser_role", "endorsed_on"]},
     "manager_endorsement", 7, ""),
    ("s47_without_consent", {"drop": ["para18_reason"]}, "para18_reason", 1,
     "Rule 1 (the law): "),
    ("best_interests", {"drop": ["capacity_assessed_by"]}, "capacity_assessed_by", 4, ""),
    ("best_interests", {"drop": ["attorney_or_deputy"]}, "attorney_or_deputy", 4, ""),
    ("best_interests", {"set": {"consent": "refused", "consent_date": "2026-03-01"}},
     "consent", 4, "best interests"),
    ("best_interests", {"set": {"capacity_for_decision": "has_capacity"}},
     "capacity_for_decision", 4, ""),
    ("best_interests", {"set": {"schedule1_condition": "para18_safeguarding"}},
     "schedule1_condition", 1, "paragraph 2"),
    ("sab_s45_request", {"drop": ["endorser_role"]}, "endorser_role", 7, ""),
    ("sab_s45_request", {"drop": ["capacity_for_decision"]}, "capacity_for_decision", 4, ""),
    ("sab_s45_request", {"drop": ["adult_wishes"]}, "adult_wishes", 2, ""),
    ("competent_young_person_refuses", {"drop": ["child_competent"]}, "child_competent", 4, ""),
    ("competent_young_person_refuses", {"drop": ["child_views"]}, "child_views", 2, ""),
    ("competent_young_person_refuses", {"drop": ["parental_responsibility_reason"]},
     "parental_responsibility_reason", 2, ""),
    ("consent_at_earlier_assessment", {"drop": ["consent_informed"]}, "consent_informed", 4,
     ""),
    ("consent_at_earlier_assessment", {"set": {"consent_date": "2026-03-11"}},
     "consent_date", 4, "future"),
    ("special_category_para18", {"drop": ["para18_protects"]}, "para18_protects", 1, ""),
    ("special_category_para18", {"drop": ["schedule1_condition", "para18_reason",
                                          "para18_protects"]},
     "schedule1_condition", 1, "Schedule 1"),
    ("special_category_para18", {"drop": ["inform_by"]}, "inform_by", 2, ""),
    ("criminal_offence_data", {"drop": ["criminal_offence_condition", "para18_reason",
                                        "para18_protects"]},
     "criminal_offence_condition", 1, ""),
    ("criminal_offence_data", {"set": {"para18_protects": "this_person"}},
     "criminal_offence_condition", 1, "paragraph 18"),
    ("partial_share_third_party_withheld", {"drop": ["withheld_reason"]}, "withheld_reason",
     6, ""),
    ("partial_share_third_party_withheld", {"drop": ["information_withheld"]},
     "information_withheld", 6, ""),
    ("partial_share_third_party_withheld", {"drop": ["third_party_protection"]},
     "third_party_protection", 6, ""),
    ("partial_share_third_party_withheld", {"drop": ["check_adequate"]}, "check_adequate", 6,
     ""),
    ("partial_share_third_party_withheld", {"drop": ["requester_identity_checked"]},
     "requester_identity_checked", 6, ""),
    ("not_shared_with_review", {"drop": ["review_on"]}, "review_on", 7, ""),
    ("not_shared_with_review", {"drop": ["decided_by_role"]}, "decided_by_role", 7, ""),
    ("endorsement_refused", {"set": {"manager_endorsement": "not_endorsed",
                                     "endorsement_disagreement": "Not enough evidence yet."}},
     "manager_endorsement", 7, "escalated"),
    ("endorsement_refused", {"set": {"manager_endorsement": "not_endorsed"}},
     "endorsement_disagreement", 7, ""),
    ("endorsement_refused", {"drop": ["public_interest_reasons"]}, "public_interest_reasons",
     4, ""),
]


@pytest.mark.parametrize(("name", "change", "field", "rule", "words"), INCOMPLETE,
                         ids=[f"{c[0]}-{c[2]}" for c in INCOMPLETE])
def test_each_scenario_is_incomplete_without_its_fields(name, change, field, rule, words):
    values = without(SCENARIOS[name], *change.get("drop", ()), **change.get("set", {}))
    found = problem(values, field)
    spec = load_spec(2)
    assert found.rule == rule
    assert found.message.startswith(f"Rule {rule} ({spec.section(rule).name}): ")
    assert words in found.message
    assert "Alex" not in found.message  # no personal data in a message


def test_every_scenario_is_covered_by_the_incomplete_cases():
    assert {c[0] for c in INCOMPLETE} == set(SCENARIOS)


# ---------------------------------------------------------------- the rules, one by one


def test_basis_for_confidentiality_requires_its_own_fields_and_no_others():
    values = SCENARIOS["s47_without_consent"]
    # a public-interest field filled under a legal requirement is refused, with the reason
    stray = problem({**values, "public_interest_facts": "Some facts."}, "public_interest_facts")
    assert stray.rule == 4 and "clear" in stray.message
    # the legal duty does not need the public-interest justification v1 demanded
    assert "public_interest_justification" not in load_spec(2)
    assert check(values) == []


def test_dates_may_precede_the_request_but_not_be_in_the_future():
    values = SCENARIOS["emergency_phone_share"]
    assert values["shared_at"] < values["requested_at"]
    assert check(values) == []
    later = datetime(2026, 3, 10, 18, 0, tzinfo=LONDON).isoformat()
    assert "future" in problem({**values, "shared_at": later}, "shared_at").message
    assert "future" in problem({**values, "decided_at": later}, "decided_at").message


def test_paragraph_18_needs_one_of_its_reasons_and_a_child_or_adult_at_risk():
    values = SCENARIOS["special_category_para18"]
    assert problem(without(values, "para18_reason"), "para18_reason").rule == 1
    adult = {**values, "subject_type": "adult"}
    assert "paragraph 18" in problem(adult, "schedule1_condition").message
    assert check({**adult, "para18_protects": "another_child"}) == []


def test_explicit_consent_for_special_category_data_on_a_consent_basis():
    values = {**SCENARIOS["consent_at_earlier_assessment"], "special_category": "yes",
              "article9_condition": "explicit_consent"}
    assert problem(values, "consent_explicit").rule == 4
    assert check({**values, "consent_explicit": True}) == []


def test_legitimate_interests_needs_a_reason_from_a_public_authority_only():
    values = {**SCENARIOS["consent_at_earlier_assessment"],
              "lawful_basis": "legitimate_interests", "statutory_gateway": None}
    assert problem(values, "legitimate_interests_reason").rule == 1
    assert check({**values, "legitimate_interests_reason": "A charity's own work."}) == []
    assert check({**values, "public_authority": "no"}) == []
    spec = load_spec(2)
    assert spec["lawful_basis"].option_values[0] != "consent"  # consent is not offered first
    assert spec["lawful_basis"].option_values[-1] == "consent"
    assert "consent" in spec["lawful_basis"].tooltip.lower()


def test_consent_basis_needs_consent_given_and_the_person_told_what_is_shared():
    values = SCENARIOS["consent_at_earlier_assessment"]
    assert problem({**values, "consent": "refused"}, "consent").rule == 4
    assert problem(without(values, "consent_informed"), "consent_informed").rule == 4


def test_children_and_adults_at_risk_are_asked_different_things():
    child = SCENARIOS["competent_young_person_refuses"]
    for name in ("child_views", "parental_responsibility_informed", "child_competent"):
        assert problem(without(child, name), name)
    adult = SCENARIOS["not_shared_with_review"]
    for name in ("adult_wishes", "capacity_for_decision"):
        assert problem(without(adult, name), name)
    # an adult not at risk is asked none of these
    plain = SCENARIOS["consent_at_earlier_assessment"]
    assert plain["subject_type"] == "adult" and check(plain) == []


def test_refusing_a_safeguarding_adults_board_request_needs_senior_sign_off():
    values = {**SCENARIOS["not_shared_with_review"], "request_direction": "inbound_request",
              "statutory_request": "sab_s45", "requester_told": "yes",
              "requester_told_on": "2026-03-10", **{
                  "manager_endorsement": "endorsed", "endorser_name": "Pat Manager",
                  "endorser_role": "Head of service", "endorsed_on": "2026-03-10"}}
    assert problem(values, "senior_signoff").rule == 7
    assert check({**values, "senior_signoff": True}) == []
    # and an endorsement, as any refusal of a statutory request
    assert problem(without(values, "manager_endorsement", "endorser_name", "endorser_role",
                           "endorsed_on"), "manager_endorsement")


def test_endorsement_needs_name_role_and_date_and_not_endorsed_never_completes():
    values = SCENARIOS["endorsement_refused"]
    for name in ("endorser_name", "endorser_role", "endorsed_on"):
        assert problem(without(values, name), name).rule == 7
    refused = {**values, "manager_endorsement": "not_endorsed",
               "endorsement_disagreement": "Wants more evidence first."}
    assert [p.field for p in check(refused)] == ["manager_endorsement"]
    # sharing with consent needs no endorsement at all
    assert check(SCENARIOS["consent_at_earlier_assessment"]) == []


def test_optional_consultations_need_their_dates():
    values = {**SCENARIOS["not_shared_with_review"], "consulted_dpo": True}
    assert problem(values, "consulted_dpo_on").rule == 3
    assert check({**values, "consulted_dpo_on": "2026-03-09"}) == []
    stray = {**SCENARIOS["not_shared_with_review"], "consulted_dsl_on": "2026-03-09"}
    assert problem(stray, "consulted_dsl_on").rule == 3


def test_other_sharing_method_has_its_detail():
    values = {**SCENARIOS["consent_at_earlier_assessment"], "sharing_method": "other"}
    assert problem(values, "sharing_method_other").rule == 6
    assert check({**values, "sharing_method_other": "Hand delivered, sealed."}) == []


def test_messages_follow_the_tense_of_the_decision():
    values = without(SCENARIOS["consent_at_earlier_assessment"], "information_shared")
    before = problem(values, "information_shared").message
    after = problem({**values, "shared_at": "2026-03-10T12:00:00+00:00"},
                    "information_shared").message
    assert "will share" in before and "will share" not in after and "shared" in after


def test_every_message_names_its_rule_by_number_and_name():
    spec = load_spec(2)
    names = {s.number: s.name for s in spec.sections}
    for values in SCENARIOS.values():
        stripped = {k: v for k, v in values.items() if k.startswith(("record_", "subject_t",
                                                                      "request"))}
        for p in check(stripped):
            assert p.message.startswith(f"Rule {p.rule} ({names[p.rule]}): "), p.message
