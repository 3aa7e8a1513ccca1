"""Twelve realistic decisions recorded on the version 2 form (issue 16), each complete.

Each scenario is the case details a host would send plus the practitioner's answers, as the
normalised values the validator and the post-back see. ``NOW`` is the moment the scenarios
are checked at: every date in them is on or before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=LONDON)
TODAY = NOW.date()


def case(subject_type: str, direction: str = "inbound_request", *, urgency: str = "routine",
         requested_at: str = "2026-03-10T09:00:00+00:00") -> dict[str, Any]:
    """The case details (section 0) of a version 2 record, as intake stores them."""
    return {
        "record_id": "SR-SCENARIO",
        "host_request_id": "REQ-1",
        "case_reference": "CASE-1",
        "subject_name": "Alex Example",
        "subject_date_of_birth": "2012-05-01",
        "subject_type": subject_type,
        "request_direction": direction,
        "urgency": urgency,
        "requested_at": requested_at,
        "practitioner_name": "Sam Worker",
        "practitioner_email": "sam@example.org",
        "manager_name": "Pat Manager",
        "manager_email": "pat@example.org",
        "requester_organisation": "Northshire Police" if direction == "inbound_request" else None,
        "recipient_organisation": "Northshire Police",
        "recipient_name": "DC Jones",
        "recipient_role": "Detective constable",
        "public_authority": "yes",
        "purpose": "To protect the person from harm.",
        "information_requested": "Recent contact notes and known addresses.",
    }


SIX_TESTS = {f"check_{name}": True for name in (
    "necessary", "proportionate", "adequate", "relevant", "accurate", "timely", "secure")}


def shared(method: str = "secure_email", **extra: Any) -> dict[str, Any]:
    """Rule 6 answers of a share."""
    return {**SIX_TESTS, "information_shared": "Contact notes from January to March.",
            "sharing_method": method, "third_party_information": "no",
            "sharing_agreement": "none", **extra}


def decided(decision: str, **extra: Any) -> dict[str, Any]:
    """Rule 7 answers."""
    return {"decision": decision, "decision_reasons": "The reasons, weighed as above.",
            "decided_by": "Sam Worker", "decided_by_role": "Social worker",
            "decided_at": "2026-03-10T11:30:00+00:00", **extra}


RISKS = {"risk_if_shared": "The family may disengage.",
         "risk_if_not_shared": "The child may come to serious harm."}
NO_ADVICE = {"advice_sought": "no"}
ENDORSED = {"manager_endorsement": "endorsed", "endorser_name": "Pat Manager",
            "endorser_role": "Team manager", "endorsed_on": "2026-03-10"}
PLAIN_DATA = {"special_category": "no", "criminal_offence_data": "no"}


def scenarios() -> dict[str, dict[str, Any]]:
    """Name -> complete values of each of the twelve scenarios."""
    return {
        # 1. a child at immediate risk; the police were phoned at night, before the record
        "emergency_phone_share": {
            **case("child", "proactive_share", urgency="emergency"),
            "lawful_basis": "vital_interests", **PLAIN_DATA,
            "subject_informed": "after_sharing", "inform_by": "2026-03-12",
            "child_views": "Too young to give a view (age 3).",
            "parental_responsibility_informed": "no",
            "parental_responsibility_reason": "Telling the father could put the child at risk.",
            **NO_ADVICE,
            "consent": "not_sought",
            "consent_not_sought_reason": "No time: the risk was immediate.",
            "child_competent": "no",
            "confidentiality_basis": "public_interest",
            "public_interest_facts": "A credible threat to the child that night.",
            "public_interest_reasons": "Immediate risk of serious harm outweighs confidence.",
            **RISKS,
            "emergency_share": True, "emergency_reason": "Police needed the address at once.",
            **shared("phone"), "shared_at": "2026-03-09T22:15:00+00:00",
            **decided("share", decided_at="2026-03-09T22:05:00+00:00"), **ENDORSED,
        },
        # 2. the police asked, without a court order, and were refused
        "police_request_refused": {
            **case("adult"),
            "statutory_request": "none",
            "subject_informed": "yes", "views_expressed": "Does not want the police told.",
            "advice_sought": "yes", "advice_from": "Jo Lead, safeguarding lead",
            "advice_summary": "No basis to override the refusal.",
            "consent": "refused", "consent_date": "2026-03-10",
            **RISKS,
            **decided("not_share", requester_told="yes", requester_told_on="2026-03-10",
                      refusal_consulted="Jo Lead, safeguarding lead.",
                      review_on="2026-04-10"),
        },
        # 3. a Children Act 1989 s47 enquiry: shared without consent under a legal duty
        "s47_without_consent": {
            **case("child"),
            "statutory_request": "statutory_duty",
            "lawful_basis": "legal_obligation", "statutory_gateway": "Children Act 1989 s47",
            "special_category": "yes", "article9_condition": "substantial_public_interest",
            "schedule1_condition": "para18_safeguarding", "para18_reason": "would_prejudice",
            "para18_protects": "this_person", "criminal_offence_data": "no",
            "subject_informed": "no", "not_informed_reason": "It would prejudice the enquiry.",
            "child_views": "Said they feel unsafe at home.",
            "parental_responsibility_informed": "no",
            "parental_responsibility_reason": "It would prejudice the enquiry.",
            **NO_ADVICE,
            "consent": "not_sought", "consent_not_sought_reason": "It would prejudice the enquiry.",
            "child_competent": "not_assessed",
            "confidentiality_basis": "legal_requirement",
            "legal_requirement_kind": "statutory_duty",
            "legal_requirement_detail": "Children Act 1989 s47 enquiry",
            **RISKS, **shared(requester_identity_checked="yes"),
            **decided("share"), **ENDORSED,
        },
        # 4. an adult who lacks capacity for this decision, shared in their best interests
        "best_interests": {
            **case("adult_at_risk", "proactive_share"),
            "lawful_basis": "public_task", "statutory_gateway": "Care Act 2014 s42",
            "special_category": "yes", "article9_condition": "health_social_care",
            "schedule1_condition": "para2_health_social_care", "criminal_offence_data": "no",
            "subject_informed": "yes", "views_expressed": "Could not follow the discussion.",
            "adult_wishes": "Wants to stay at home.",
            **NO_ADVICE,
            "consent": "cannot_consent", "capacity_for_decision": "lacks_capacity",
            "confidentiality_basis": "best_interests",
            "capacity_assessed_by": "Dr Lee, GP", "capacity_assessed_on": "2026-03-02",
            "best_interests_consulted": "Daughter and the advocate.",
            "attorney_or_deputy": "None",
            **RISKS, **shared(),
            **decided("share"), **ENDORSED,
        },
        # 5. a Safeguarding Adults Board request under Care Act 2014 s45
        "sab_s45_request": {
            **case("adult_at_risk"),
            "statutory_request": "sab_s45",
            "lawful_basis": "legal_obligation", "statutory_gateway": "Care Act 2014 s45",
            **PLAIN_DATA,
            "subject_informed": "yes", "views_expressed": "Unhappy but understands.",
            "adult_wishes": "Would rather it was not shared.",
            **NO_ADVICE,
            "consent": "refused", "consent_date": "2026-03-08",
            "capacity_for_decision": "has_capacity",
            "confidentiality_basis": "legal_requirement", "legal_requirement_kind": "sab_s45",
            "legal_requirement_detail": "Request of 1 March for the safeguarding adults review",
            **RISKS, **shared("secure_portal", requester_identity_checked="yes"),
            **decided("share"), **ENDORSED,
        },
        # 6. a competent 15-year-old refuses, and the refusal is respected
        "competent_young_person_refuses": {
            **case("child"),
            "statutory_request": "none",
            "subject_informed": "yes", "views_expressed": "Refused: wants to tell the GP herself.",
            "child_views": "Wants to tell the GP herself next week.",
            "parental_responsibility_informed": "not_appropriate",
            "parental_responsibility_reason": "She asked us not to; no risk that needs it.",
            **NO_ADVICE,
            "consent": "refused", "consent_date": "2026-03-10", "child_competent": "yes",
            **RISKS,
            **decided("not_share", requester_told="yes", requester_told_on="2026-03-10",
                      refusal_consulted="Nobody: a clear competent refusal, no risk.",
                      review_on="2026-03-20"),
        },
        # 7. consent given at an earlier assessment, before this request
        "consent_at_earlier_assessment": {
            **case("adult", "proactive_share"),
            "lawful_basis": "public_task", "statutory_gateway": "Care Act 2014 s9",
            **PLAIN_DATA,
            "subject_informed": "yes", "views_expressed": "Agreed at the assessment.",
            **NO_ADVICE,
            "consent": "given", "consent_given_by": "The person", "consent_informed": True,
            "consent_date": "2025-11-01",
            "confidentiality_basis": "consent",
            **RISKS, **shared(),
            **decided("share"),
        },
        # 8. special category data under Schedule 1 paragraph 18
        "special_category_para18": {
            **case("child", "proactive_share"),
            "lawful_basis": "public_task", "statutory_gateway": "Children Act 1989 s17",
            "special_category": "yes", "article9_condition": "substantial_public_interest",
            "schedule1_condition": "para18_safeguarding",
            "para18_reason": "cannot_reasonably_obtain", "para18_protects": "this_person",
            "criminal_offence_data": "no",
            "subject_informed": "after_sharing", "inform_by": "2026-03-13",
            "child_views": "Not asked: aged 2.",
            "parental_responsibility_informed": "yes",
            **NO_ADVICE,
            "consent": "not_sought", "consent_not_sought_reason": "Mother cannot be reached.",
            "child_competent": "no",
            "confidentiality_basis": "public_interest",
            "public_interest_facts": "Unexplained injuries seen at nursery.",
            "public_interest_reasons": "Risk of serious harm outweighs confidence.",
            **RISKS, **shared(), **decided("share"), **ENDORSED,
        },
        # 9. a parent's criminal offence data, shared to protect their child
        "criminal_offence_data": {
            **case("adult", "proactive_share"),
            "lawful_basis": "public_task", "statutory_gateway": "Children Act 1989 s47",
            "special_category": "no", "criminal_offence_data": "yes",
            "criminal_offence_condition": "para18_safeguarding",
            "para18_reason": "would_prejudice", "para18_protects": "another_child",
            "subject_informed": "no", "not_informed_reason": "Would alert the parent.",
            **NO_ADVICE,
            "consent": "not_sought", "consent_not_sought_reason": "Would alert the parent.",
            "confidentiality_basis": "public_interest",
            "public_interest_facts": "A recent conviction for violence, living with the child.",
            "public_interest_reasons": "The child's safety outweighs the parent's confidence.",
            **RISKS, **shared(), **decided("share"), **ENDORSED,
        },
        # 10. a partial share: the referrer's identity and a sibling's records held back
        "partial_share_third_party_withheld": {
            **case("child"),
            "statutory_request": "none",
            "lawful_basis": "public_task", "statutory_gateway": "Children Act 2004 s11",
            **PLAIN_DATA,
            "subject_informed": "yes", "views_expressed": "Agreed.",
            "child_views": "Agreed, as long as the school is not told more.",
            "parental_responsibility_informed": "yes",
            **NO_ADVICE,
            "consent": "given", "consent_given_by": "Mother", "consent_informed": True,
            "consent_date": "2026-03-09", "child_competent": "no",
            "confidentiality_basis": "consent",
            **RISKS,
            **shared(requester_identity_checked="yes", third_party_information="yes",
                     third_party_protection="Referrer's name and the sibling's notes removed.",
                     information_withheld="The sibling's health records.",
                     withheld_reason="Not needed for the purpose.",
                     caveats="Not to be shared further without asking us."),
            **decided("share_part"),
        },
        # 11. a decision not to share, to be looked at again on a set date
        "not_shared_with_review": {
            **case("adult_at_risk", "proactive_share"),
            "subject_informed": "yes", "views_expressed": "Does not want it shared yet.",
            "adult_wishes": "Wants to try the support plan first.",
            **NO_ADVICE,
            "consent": "refused", "consent_date": "2026-03-10",
            "capacity_for_decision": "has_capacity",
            **RISKS,
            **decided("not_share", refusal_consulted="Pat Manager, team manager.",
                      review_on="2026-03-24", review_trigger="Any new incident."),
        },
        # 12. the manager does not endorse sharing without consent: escalated, not complete
        #     (complete here once endorsed; see the tests for the refusal)
        "endorsement_refused": {
            **case("adult", "proactive_share"),
            "lawful_basis": "public_task", "statutory_gateway": "Crime and Disorder Act 1998 s115",
            **PLAIN_DATA,
            "subject_informed": "no", "not_informed_reason": "Could not be reached.",
            **NO_ADVICE,
            "consent": "not_sought", "consent_not_sought_reason": "Could not be reached.",
            "confidentiality_basis": "public_interest",
            "public_interest_facts": "Threats made to a neighbour.",
            "public_interest_reasons": "Risk to others outweighs confidence.",
            **RISKS, **shared(), **decided("share"), **ENDORSED,
        },
    }
