"""The field spec loads, is self-consistent and carries the v1 host contract names."""

import pytest

from sharewise.forms.spec import SpecError, load_spec, parse_spec

V1_FIELDS = """record_id host_request_id case_reference subject_name subject_date_of_birth
subject_type request_direction urgency requested_at practitioner_name practitioner_email
practitioner_team manager_name manager_email requester_organisation recipient_organisation
recipient_name recipient_role purpose information_requested lawful_basis statutory_gateway
special_category special_category_condition subject_informed not_informed_reason views_expressed
advice_sought advice_from advice_summary identity_withheld consent consent_given_by consent_date
consent_not_sought_reason capacity_assessment public_interest_justification risk_if_shared
risk_if_not_shared check_necessary check_proportionate check_relevant check_accurate check_timely
check_secure information_shared sharing_method shared_on decision decision_reasons decided_by
decided_on manager_endorsement""".split()


def test_spec_has_exactly_the_v1_fields_in_order():
    assert list(load_spec().names) == V1_FIELDS


def test_every_field_has_tooltip_and_valid_section():
    spec = load_spec()
    for f in spec.fields:
        assert f.tooltip and f.label
        assert 0 <= f.section <= 7
    assert {s.number for s in spec.sections} == set(range(8))


def test_prefilled_identity_fields_are_read_only():
    spec = load_spec()
    editable = {f.name for f in spec.prefilled_fields if not f.read_only}
    assert editable == {"purpose", "information_requested", "decided_by"}


def test_spec_rejects_condition_on_unknown_field():
    import tomllib

    from sharewise.forms.spec import SPEC_PATH

    data = tomllib.loads(SPEC_PATH.read_text())
    data["fields"][20]["required_when"] = {"no_such_field": ["x"]}
    with pytest.raises(SpecError):
        parse_spec(data)


V1_CHOICES = {
    "subject_type": ["child", "adult_at_risk", "adult"],
    "request_direction": ["inbound_request", "proactive_share"],
    "urgency": ["emergency", "urgent", "routine"],
    "lawful_basis": ["consent", "legal_obligation", "vital_interests", "public_task",
                     "legitimate_interests"],
    "special_category": ["yes", "no"],
    "subject_informed": ["yes", "no", "after_sharing"],
    "advice_sought": ["yes", "no"],
    "consent": ["given", "refused", "withdrawn", "not_sought", "lacks_capacity"],
    "sharing_method": ["secure_email", "secure_portal", "phone", "meeting", "post", "other"],
    "decision": ["share", "share_part", "not_share"],
    "manager_endorsement": ["endorsed", "not_endorsed"],
}


def test_choice_codes_are_the_v1_contract():
    spec = load_spec()
    assert {f.name: list(f.option_values) for f in spec.fields if f.type == "choice"} == V1_CHOICES


def test_spec_rejects_a_choice_code_that_is_not_a_plain_pdf_name():
    import tomllib

    from sharewise.forms.spec import SPEC_PATH

    data = tomllib.loads(SPEC_PATH.read_text())
    decision = next(f for f in data["fields"] if f["name"] == "decision")
    decision["options"][0]["value"] = "share now"  # would break the radio button's /V name
    with pytest.raises(SpecError):
        parse_spec(data)
