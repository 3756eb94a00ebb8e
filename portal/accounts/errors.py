"""Why a single sign-on attempt was refused: a short code for the audit trail and a sentence for the person."""

from __future__ import annotations

SSO_REASONS: dict[str, str] = {
    "bad_signature": "The identity provider's token has a signature that does not verify with the provider's keys.",
    "wrong_audience": "The identity provider's token was issued for another application.",
    "wrong_issuer": "The token was not issued by the configured identity provider.",
    "expired": "The identity provider's token has expired.",
    "not_yet_valid": "The identity provider's token is dated in the future.",
    "nonce_mismatch": "The token does not belong to this sign-in (its nonce is another one's: a replayed token).",
    "nonce_replayed": "The token's nonce was used before: a replayed token.",
    "wrong_algorithm": "The token is signed with an algorithm this portal does not accept.",
    "unknown_key": "No signing key of the identity provider matches the token.",
    "malformed": "The identity provider's token cannot be read or lacks a required claim.",
    "subject_mismatch": "The provider's user information is about another person than its token.",
    "state": "This sign-in is unknown or was completed already; start again from the sign-in page.",
    "provider_error": "The identity provider ended the sign-in with an error ({error}).",
    "code_refused": "The identity provider refused to exchange the sign-in code.",
    "no_username": "The identity provider gave no user name for this person.",
    "bad_username": "The user name the identity provider gave cannot be used here.",
    "username_taken": (
        "A password account with the user name {username} exists already and is not linked to single sign-on "
        "(an administrator can allow linking with SSO_LINK_EXISTING_USERS=1)."
    ),
    "no_account": "There is no account for this person, and accounts are not created at sign-in here.",
    "account_inactive": "This account is deactivated.",
}


class SsoRefused(Exception):
    """A sign-in through the identity provider that the portal does not accept."""

    def __init__(self, reason: str, **context: str) -> None:
        self.reason = reason
        self.context = context
        super().__init__(SSO_REASONS[reason].format(**context) if context else SSO_REASONS[reason])

    @property
    def message(self) -> str:
        return str(self)


class SsoUnavailable(Exception):
    """The identity provider does not answer (or answers with a server error)."""
