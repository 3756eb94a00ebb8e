"""Single sign-on against a real OpenID provider (django-oidc-provider in a second process on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditEvent
from portal.accounts.models import SsoIdentity
from tests.accounts.factories import DEFAULT_PASSWORD, UserFactory
from tests.accounts.sso_flow import provider_callback_url, sso_sign_in
from tests.oidc_provider.fixture import OpenIDProvider

pytestmark = pytest.mark.django_db


def roles_of(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def test_the_sign_in_page_shows_the_button_only_when_configured(client: Client, settings: Any) -> None:
    assert "single sign-on" not in client.get("/login/").content.decode()
    assert client.get("/sso/start/").status_code == 404
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_OP_ISSUER = "http://127.0.0.1:9/openid"
    for name in ("AUTHORIZATION", "TOKEN", "JWKS"):
        setattr(settings, f"OIDC_OP_{name}_ENDPOINT", f"http://127.0.0.1:9/openid/{name.lower()}")
    settings.SSO_BUTTON_LABEL = "Sign in with Contoso ID"
    page = client.get("/login/").content.decode()
    assert "Sign in with Contoso ID" in page and 'href="/sso/start/"' in page
    assert 'id="id_password"' in page  # password sign-in stays for everyone by default


def test_a_new_person_gets_an_account_and_the_roles_of_their_groups(client: Client, sso: OpenIDProvider) -> None:
    sso.user("jane", email="jane@contoso.test", given_name="Jane", family_name="Doe", groups=["Staff"])
    response = sso_sign_in(client, sso, "jane")
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="jane")
    assert (user.email, user.first_name, user.last_name) == ("jane@contoso.test", "Jane", "Doe")
    assert not user.has_usable_password()
    assert roles_of(user) == ["Staff"]
    identity = SsoIdentity.objects.get(user=user)
    assert identity.issuer == sso.issuer
    assert client.get("/").status_code == 200
    actions = list(AuditEvent.objects.filter(object_id=str(user.pk)).order_by("seq").values_list("action", "details"))
    assert [action for action, _ in actions] == ["user.created", "user.updated", "user.roles_changed", "auth.login"]
    assert actions[2][1]["added"] == ["Staff"] and actions[2][1]["via"] == "sso"
    assert actions[3][1]["method"] == "sso"


def test_roles_follow_the_claim_at_every_sign_in(client: Client, sso: OpenIDProvider, settings: Any) -> None:
    settings.SSO_ROLES_CLAIM = "roles"
    settings.SSO_ROLE_MAP = '{"portal-staff": "Staff", "privacy-team": ["Governance officer"], "x": "Auditor"}'
    sso.state["groups_claim"] = "roles"
    sso.user("jane", groups=["portal-staff", "unrelated"])
    sso_sign_in(client, sso, "jane")
    user = User.objects.get(username="jane")
    assert roles_of(user) == ["Staff"]
    client.post("/logout/")
    sso.user("jane", groups=["privacy-team"])
    sso_sign_in(client, sso, "jane")
    assert roles_of(user) == ["Governance officer"]  # Staff removed with its group
    event = AuditEvent.objects.filter(action="user.roles_changed").latest("seq")
    assert event.details["removed"] == ["Staff"] and event.details["added"] == ["Governance officer"]
    assert event.details["claim"] == "roles"
    client.post("/logout/")
    sso.user("jane", groups=[])
    sso_sign_in(client, sso, "jane")
    assert roles_of(user) == []


def test_an_administrator_role_from_the_claim_brings_the_site_admin_and_takes_it_away(
    client: Client, sso: OpenIDProvider
) -> None:
    sso.user("root", groups=["Administrator"])
    sso_sign_in(client, sso, "root")
    assert User.objects.get(username="root").is_staff
    client.post("/logout/")
    sso.user("root", groups=["Staff"])
    sso_sign_in(client, sso, "root")
    assert not User.objects.get(username="root").is_staff


def test_a_password_account_of_the_same_name_is_not_taken_over(client: Client, sso: OpenIDProvider) -> None:
    UserFactory.create(username="sam", roles=["Administrator"])
    sso.user("sam", groups=["Staff"])
    response = sso_sign_in(client, sso, "sam")
    assert response.status_code == 403
    assert "exists already and is not linked" in response.content.decode()
    assert roles_of(User.objects.get(username="sam")) == ["Administrator"]
    assert AuditEvent.objects.filter(action="auth.sso_refused").latest("seq").details["reason"] == "username_taken"


def test_linking_a_password_account_when_allowed(client: Client, sso: OpenIDProvider, settings: Any) -> None:
    settings.SSO_LINK_EXISTING_USERS = True
    sam = UserFactory.create(username="sam", roles=["Administrator"])
    sso.user("sam", groups=["Staff"])
    assert sso_sign_in(client, sso, "sam").status_code == 302
    assert roles_of(sam) == ["Staff"] and SsoIdentity.objects.filter(user=sam).exists()
    assert AuditEvent.objects.filter(action="user.sso_linked", object_id=str(sam.pk)).exists()


@pytest.mark.parametrize(
    ("tamper", "reason", "words"),
    [
        ("bad-signature", "bad_signature", "signature that does not verify"),
        ("wrong-audience", "wrong_audience", "issued for another application"),
        ("expired", "expired", "has expired"),
        ("replay", "nonce_mismatch", "replayed token"),
    ],
)
def test_bad_id_tokens_are_refused_and_audited(
    client: Client, sso: OpenIDProvider, tamper: str, reason: str, words: str
) -> None:
    sso.user("jane", groups=["Staff"])
    if tamper == "replay":  # a first, good sign-in gives the provider a token to hand out again
        assert sso_sign_in(client, sso, "jane").status_code == 302
        client.post("/logout/")
    sso.tamper(tamper)
    response = sso_sign_in(client, sso, "jane")
    assert response.status_code == 403
    assert words in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.filter(action="auth.sso_refused").latest("seq")
    assert event.outcome == "failure" and event.details["reason"] == reason
    assert "eyJ" not in str(event.details)  # never the token itself
    if tamper != "replay":
        assert not User.objects.filter(username="jane").exists()


def test_the_same_nonce_is_never_accepted_twice(client: Client, sso: OpenIDProvider) -> None:
    """The session forgets a state once used; the nonce store refuses a token whose nonce was accepted before."""
    from portal.accounts.errors import SsoRefused
    from portal.accounts.sso import PortalOIDCBackend, _nonce_consume

    _nonce_consume("n-1")
    with pytest.raises(SsoRefused) as refused:
        _nonce_consume("n-1")
    assert refused.value.reason == "nonce_replayed"
    # and the provider's answer, replayed to the portal, finds its state used up
    sso.user("jane", groups=["Staff"])
    callback = provider_callback_url(client.get("/sso/start/"), sso, "jane", "provider-pass")
    path = callback.split("testserver", 1)[1]
    assert client.get(path).status_code == 302
    client.post("/logout/")
    assert client.get(path).status_code == 403
    assert AuditEvent.objects.filter(action="auth.sso_refused").latest("seq").details["reason"] == "state"
    assert PortalOIDCBackend().authenticate(None, username="jane", password="x") is None


def test_a_provider_that_is_down_gets_a_clear_page_and_break_glass_still_works(
    client: Client, sso: OpenIDProvider, settings: Any
) -> None:
    settings.SSO_PASSWORD_LOGIN = False
    settings.SSO_BREAK_GLASS_USERS = ["breakglass"]
    UserFactory.create(username="breakglass", roles=["Administrator"])
    UserFactory.create(username="sam", roles=["Staff"])
    sso.stop()
    response = client.get("/sso/start/")
    assert response.status_code == 503
    assert "identity provider is not answering" in response.content.decode()
    assert "break-glass" in response.content.decode()
    refused = client.post("/login/", {"username": "sam", "password": DEFAULT_PASSWORD})
    assert "Password sign-in is turned off" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.login_failed").latest("seq").details["username"] == "sam"
    assert client.post("/login/", {"username": "breakglass", "password": DEFAULT_PASSWORD}).status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(username="breakglass").pk)


def test_password_sign_in_off_also_closes_the_site_admin_and_non_administrators(
    client: Client, sso: OpenIDProvider, settings: Any
) -> None:
    settings.SSO_PASSWORD_LOGIN = False
    settings.SSO_BREAK_GLASS_USERS = ["alice", "sam"]
    UserFactory.create(username="bob", roles=["Administrator"])
    UserFactory.create(username="sam", roles=["Staff"])  # named, but no administrator
    page = client.get("/login/").content.decode()
    assert "Break-glass administrator sign-in" in page
    client.post("/admin/login/", {"username": "bob", "password": DEFAULT_PASSWORD})
    assert "_auth_user_id" not in client.session
    client.post("/login/", {"username": "sam", "password": DEFAULT_PASSWORD})
    assert "_auth_user_id" not in client.session


def test_signing_out_ends_the_session_at_the_provider_too(client: Client, sso: OpenIDProvider) -> None:
    sso.user("jane", groups=["Staff"])
    sso_sign_in(client, sso, "jane")
    response = client.post("/logout/")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{sso.issuer}/end-session?id_token_hint=")
    assert "post_logout_redirect_uri=http%3A%2F%2Ftestserver%2Flogin%2F" in location
    assert "_auth_user_id" not in client.session


def test_a_provider_error_is_refused_and_audited(client: Client, sso: OpenIDProvider) -> None:
    client.get("/sso/start/")
    state = next(iter(client.session["oidc_states"]))
    response = client.get(f"/sso/callback/?error=access_denied&state={state}")
    assert response.status_code == 403 and "access_denied" in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.sso_refused").latest("seq").details["reason"] == "provider_error"


def test_sso_settings_are_checked(settings: Any) -> None:
    from portal.accounts.checks import sso_settings_check

    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_OP_ISSUER = ""
    settings.SSO_ROLE_MAP = '{"a": "Wizard"}'
    settings.SSO_PASSWORD_LOGIN = False
    settings.SSO_BREAK_GLASS_USERS = []
    ids = sorted(str(message.id) for message in sso_settings_check())
    assert ids == ["accounts.E001", "accounts.E003", "accounts.W001"]
