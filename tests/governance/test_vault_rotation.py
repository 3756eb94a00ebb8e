"""Rotating the pseudonymization vault key: new key first, old key kept, `manage.py vault_rotate`."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import transaction

from audit.models import AuditEvent
from governance.models import ConversationVault
from governance.vault import vault_entries, vault_open, vault_save

pytestmark = pytest.mark.django_db


def _vault_with(conversation_key: str, value: str) -> str:
    with transaction.atomic():
        vault = vault_open(conversation_key=conversation_key)
        placeholder = vault.placeholder("PERSON", value)
        vault_save(vault=vault)
    return placeholder


def test_a_new_key_first_keeps_old_vaults_readable_and_rotation_moves_them_to_it(settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GOVERNANCE_VAULT_KEY = old
    placeholders = [_vault_with(f"conversation-{n}", f"Person {n}") for n in range(3)]

    settings.GOVERNANCE_VAULT_KEY = f"{new}, {old}"
    assert vault_entries(conversation_key="conversation-1") == {placeholders[1]: "Person 1"}

    output = StringIO()
    call_command("vault_rotate", stdout=output)
    assert "vaults_rotated: 3" in output.getvalue() and "vaults_unreadable: 0" in output.getvalue()
    event = AuditEvent.objects.get(action="governance.vault_key_rotated")
    assert event.details == {"rotated": 3, "unreadable": 0, "keys_configured": 2}

    settings.GOVERNANCE_VAULT_KEY = new  # the old key can go now
    for n, placeholder in enumerate(placeholders):
        assert vault_entries(conversation_key=f"conversation-{n}") == {placeholder: f"Person {n}"}
    assert all(Fernet(new).decrypt(row.ciphertext.encode()) for row in ConversationVault.objects.all())


def test_vaults_no_key_opens_are_left_alone_and_the_rotation_fails(settings: Any) -> None:
    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GOVERNANCE_VAULT_KEY = lost
    _vault_with("conversation-lost", "Ada Lovelace")
    before = ConversationVault.objects.get(conversation_key="conversation-lost").ciphertext

    settings.GOVERNANCE_VAULT_KEY = new
    _vault_with("conversation-new", "Grace Hopper")
    with pytest.raises(CommandError, match="1 vault"):
        call_command("vault_rotate", stdout=StringIO())
    assert ConversationVault.objects.get(conversation_key="conversation-lost").ciphertext == before
    assert AuditEvent.objects.get(action="governance.vault_key_rotated").outcome == "failure"
