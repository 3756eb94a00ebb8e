"""Claims of the test provider's users, read from the state file at every request (so a test can change them)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from oidc_provider.lib.claims import ScopeClaims

from tests.oidc_provider import state


def _person(user: Any) -> dict[str, Any]:
    return dict(state.read().get("users", {}).get(user.username, {}))


def userinfo(claims: dict[str, Any], user: Any) -> dict[str, Any]:
    person = _person(user)
    claims["preferred_username"] = person.get("preferred_username", user.username)
    claims["email"] = person.get("email", "")
    claims["email_verified"] = bool(person.get("email"))
    claims["given_name"] = person.get("given_name", "")
    claims["family_name"] = person.get("family_name", "")
    claims["name"] = " ".join(filter(None, [claims["given_name"], claims["family_name"]]))
    return claims


class GroupsClaims(ScopeClaims):
    info_groups = (_("Groups"), _("The groups you belong to."))

    def scope_groups(self) -> dict[str, Any]:
        person = _person(self.user)
        claim = state.read().get("groups_claim", "groups")
        return {claim: list(person.get("groups", []))}
