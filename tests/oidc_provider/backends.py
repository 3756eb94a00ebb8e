"""Provider-side sign-in against the users of the state file (a local provider user is kept for the sub)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User

from tests.oidc_provider import state


class StateFileBackend(ModelBackend):
    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        person = state.read().get("users", {}).get(username or "")
        if not person or person.get("password") != password:
            return None
        user, _ = User.objects.get_or_create(username=username)
        return user
