"""What the customer records add to governance's `abstract` action: a customer is described by their tier,
an address from a record by that record's city and country (governance.abstraction)."""

from __future__ import annotations

import re

from django.db.models import Q

from portal.customers.models import Customer, Tier

SOURCE_NAME = "customers"
MATCH_LIMIT = 20
TIER_WORDS = {Tier.STANDARD: "standard", Tier.PRIORITY: "priority", Tier.KEY_ACCOUNT: "key-account"}


def _word(token: str) -> str:
    return r"(^|[^[:alnum:]])" + re.escape(token) + r"([^[:alnum:]]|$)"


def _tier_phrase(tiers: set[str]) -> str:
    return f"a {TIER_WORDS.get(Tier(next(iter(tiers))), 'standard')} customer" if len(tiers) == 1 else "a customer"


def customer_description(data_class: str, value: str) -> str | None:
    """(data class, value) -> a description, or None when no record explains the value."""
    from governance.abstraction import city_and_country, person_tokens

    if data_class == "PERSON":
        tokens = person_tokens(value)
        if not tokens:
            return None
        matches = Q()
        for token in tokens:
            matches &= Q(name__iregex=_word(token))
        tiers = set(Customer.objects.filter(matches).values_list("tier", flat=True)[:MATCH_LIMIT])
        return _tier_phrase(tiers) if tiers else None
    if data_class == "CUSTOMER_FIELD":
        tiers = set(Customer.objects.filter(organisation__iexact=value).values_list("tier", flat=True)[:MATCH_LIMIT])
        return f"the organisation of {_tier_phrase(tiers)}" if tiers else None
    if data_class == "POSTAL_ADDRESS":
        first_line = re.split(r"[\n,;]", value, maxsplit=1)[0].strip()
        if len(first_line) < 4:
            return None
        addresses = set(
            Customer.objects.filter(postal_address__icontains=first_line).values_list("postal_address", flat=True)[
                :MATCH_LIMIT
            ]
        )
        places = {city_and_country(address) for address in addresses} - {None}
        return f"an address in {places.pop()}" if len(places) == 1 else None
    return None


def register_abstraction_describer() -> None:
    from governance.abstraction import register_describer

    register_describer(SOURCE_NAME, customer_description)
