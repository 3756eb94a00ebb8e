from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from governance import classes as dc
from governance.policy import default_document, document_diff, effective_policy, normalise_document
from tests.governance.factories import policy_with


def test_the_defaults_pseudonymize_personal_data_and_block_secrets_for_staff() -> None:
    staff = effective_policy(default_document(), ["Staff"])
    for data_class in (dc.PERSON, dc.EMAIL, dc.PHONE, dc.POSTAL_ADDRESS, dc.DATE_OF_BIRTH, dc.CUSTOMER_FIELD):
        assert staff.classes[data_class] == dc.PSEUDONYMIZE
    for data_class in (dc.CREDENTIAL, dc.NATIONAL_ID, dc.PAYMENT_CARD, dc.BANK_ACCOUNT):
        assert staff.classes[data_class] == dc.BLOCK
    assert staff.label_action(dc.LOCAL_ONLY) == dc.LOCAL
    assert staff.label_action(dc.CONFIDENTIAL) == dc.WITHHOLD
    assert staff.label_action(dc.PUBLIC) == dc.SEND


def test_local_only_cannot_be_relaxed_by_an_edited_document() -> None:
    document = policy_with({"Staff": {"labels": {dc.LOCAL_ONLY: dc.SEND}}})
    assert normalise_document(document)["roles"]["Staff"]["labels"][dc.LOCAL_ONLY] == dc.LOCAL


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (dc.ALLOW, dc.PSEUDONYMIZE, dc.PSEUDONYMIZE),
        (dc.REDACT, dc.PSEUDONYMIZE, dc.REDACT),
        (dc.ALLOW, dc.BLOCK, dc.BLOCK),
        (dc.ALLOW, dc.ALLOW, dc.ALLOW),
    ],
)
def test_several_roles_get_the_most_restrictive_action(first: str, second: str, expected: str) -> None:
    document = normalise_document(
        policy_with({"Staff": {"classes": {dc.PERSON: first}}, "Auditor": {"classes": {dc.PERSON: second}}})
    )
    assert effective_policy(document, ["Staff", "Auditor"]).classes[dc.PERSON] == expected
    assert effective_policy(document, ["Staff"]).classes[dc.PERSON] == first


def test_several_roles_combine_provider_rules_strictly() -> None:
    document = normalise_document(
        policy_with(
            {
                "Staff": {"providers": {"allowed_regions": ["eu", "us"], "blocked_providers": ["openai"]}},
                "Auditor": {
                    "providers": {"allowed_regions": ["eu"], "require_zero_data_retention": True},
                    "preview_before_send": True,
                },
            }
        )
    )
    both = effective_policy(document, ["Staff", "Auditor"])
    assert both.allowed_regions == frozenset({"eu"})
    assert both.blocked_providers == frozenset({"openai"})
    assert both.require_zero_data_retention and both.preview_before_send
    assert both.provider_refusal(provider="anthropic", zero_data_retention=True, region="eu") == ""
    assert "zero data retention" in both.provider_refusal(provider="anthropic", zero_data_retention=False, region="eu")
    assert "region us" in both.provider_refusal(provider="anthropic", zero_data_retention=True, region="us")
    assert "blocked" in both.provider_refusal(provider="OpenAI", zero_data_retention=True, region="eu")


def test_someone_without_a_known_role_gets_the_strictest_of_all_roles() -> None:
    document = normalise_document(
        policy_with({"Staff": {"classes": {dc.PERSON: dc.ALLOW}}, "Auditor": {"classes": {dc.PERSON: dc.REDACT}}})
    )
    assert effective_policy(document, []).classes[dc.PERSON] == dc.REDACT


def test_an_unknown_label_is_treated_as_local_only() -> None:
    assert effective_policy(default_document(), ["Staff"]).label_action("secret-ish") == dc.LOCAL


def test_bad_actions_are_refused() -> None:
    with pytest.raises(ValidationError):
        normalise_document(policy_with({"Staff": {"classes": {dc.PERSON: "maybe"}}}))


def test_the_diff_names_each_changed_rule_readably() -> None:
    before = normalise_document(default_document())
    after = normalise_document(policy_with({"Staff": {"classes": {dc.PERSON: dc.ALLOW}, "preview_before_send": True}}))
    assert document_diff(before, after) == [
        {"rule": "Staff · PERSON", "before": "pseudonymize", "after": "allow"},
        {"rule": "Staff · preview before send", "before": "off", "after": "on"},
    ]
