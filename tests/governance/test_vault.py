"""The vault on its own: keys, numbering, what is written back, and rotation in batches."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.db import transaction

from governance.models import ConversationVault
from governance.vault import ERROR_VAULT_KEY, Vault, vault_entries, vault_keys, vault_open, vault_rotate, vault_save

pytestmark = pytest.mark.django_db


def test_several_keys_are_separated_by_commas_and_the_first_encrypts(settings: Any) -> None:
    first, second = Fernet.generate_key(), Fernet.generate_key()
    settings.GOVERNANCE_VAULT_KEY = f"{first.decode()},{second.decode()}"
    assert vault_keys() == [first, second]
    settings.GOVERNANCE_VAULT_KEY = first  # bytes, as a secret file may give it
    assert vault_keys() == [first]
    settings.GOVERNANCE_VAULT_KEY = f" {second.decode()} , {first.decode()} ,"
    assert vault_keys() == [second, first]
    token = Vault("keys", {"<PERSON_1>": "Ada"}, {"PERSON": 1}).encrypt()
    assert Fernet(second).decrypt(token.encode())  # the first key encrypts ...
    with pytest.raises(InvalidToken):
        Fernet(first).decrypt(token.encode())


@pytest.mark.parametrize("configured", ["", " , ", None])
def test_no_key_is_an_error_that_says_which_setting(settings: Any, configured: Any) -> None:
    if configured is None:
        del settings.GOVERNANCE_VAULT_KEY
    else:
        settings.GOVERNANCE_VAULT_KEY = configured
    with pytest.raises(RuntimeError, match=r"^The pseudonymization vault key is missing or invalid"):
        vault_keys()


def test_a_malformed_key_is_the_same_error(settings: Any) -> None:
    settings.GOVERNANCE_VAULT_KEY = "not-a-fernet-key"
    with pytest.raises(RuntimeError) as error:
        Vault("malformed").encrypt()
    assert str(error.value) == ERROR_VAULT_KEY


def test_a_value_keeps_its_placeholder_within_one_vault_and_each_class_counts_on_its_own() -> None:
    vault = Vault("numbers")
    assert vault.placeholder("PERSON", "Ada") == "<PERSON_1>"
    assert vault.placeholder("PERSON", "Grace") == "<PERSON_2>"
    assert vault.placeholder("PERSON", "Ada") == "<PERSON_1>"
    assert vault.placeholder("EMAIL", "Ada") == "<EMAIL_1>"  # the same text in another class is another value
    assert vault.entries == {"<PERSON_1>": "Ada", "<PERSON_2>": "Grace", "<EMAIL_1>": "Ada"}
    reopened = Vault.decrypt("numbers", vault.encrypt())
    assert reopened.placeholder("PERSON", "Grace") == "<PERSON_2>" and not reopened.changed
    assert reopened.placeholder("PERSON", "Joan") == "<PERSON_3>" and reopened.changed

    # classes with an underscore in their name are found again after a reopen too
    vault.placeholder("POSTAL_ADDRESS", "12 Baker Street")
    vault.placeholder("DATE_OF_BIRTH", "12 March 1980")
    reopened = Vault.decrypt("numbers", vault.encrypt())
    assert reopened.placeholder("POSTAL_ADDRESS", "12 Baker Street") == "<POSTAL_ADDRESS_1>"
    assert reopened.placeholder("DATE_OF_BIRTH", "12 March 1980") == "<DATE_OF_BIRTH_1>"
    assert not reopened.changed


def test_a_vault_is_written_back_only_when_it_changed() -> None:
    with transaction.atomic():
        vault = vault_open(conversation_key="write-back")
        vault.placeholder("PERSON", "Ada")
        vault_save(vault=vault)
    assert vault.changed is False
    row = ConversationVault.objects.get(conversation_key="write-back")
    first_saved = row.updated_at
    assert first_saved > row.created_at
    with transaction.atomic():
        vault = vault_open(conversation_key="write-back")
        vault.placeholder("PERSON", "Ada")  # known already: nothing new
        vault_save(vault=vault)
    assert ConversationVault.objects.get(conversation_key="write-back").updated_at == first_saved
    with transaction.atomic():
        vault = vault_open(conversation_key="write-back")
        vault.placeholder("PERSON", "Grace")
        vault_save(vault=vault)
        vault_save(vault=vault)  # a second save of the same change writes nothing more
    assert ConversationVault.objects.get(conversation_key="write-back").updated_at > first_saved


def test_reading_a_vault_for_re_identification_creates_nothing() -> None:
    assert vault_entries(conversation_key="never-used") == {}
    assert not ConversationVault.objects.filter(conversation_key="never-used").exists()


def _stored_vault(key: str, value: str, *, pk: int | None = None) -> None:
    token = Vault(key, {"<PERSON_1>": value}, {"PERSON": 1}).encrypt()
    ConversationVault.objects.create(pk=pk, conversation_key=key, ciphertext=token)


def test_rotation_walks_every_batch_counts_every_unreadable_vault_and_goes_on_past_them(settings: Any) -> None:
    old, lost, new = (Fernet.generate_key().decode() for _ in range(3))
    ConversationVault.objects.all().delete()
    settings.GOVERNANCE_VAULT_KEY = lost
    _stored_vault("lost-1", "Ada", pk=1)  # the very first row too, and unreadable ones before readable ones
    _stored_vault("lost-2", "Grace", pk=2)
    settings.GOVERNANCE_VAULT_KEY = old
    for n in range(5):
        _stored_vault(f"kept-{n}", f"Person {n}", pk=3 + n)

    settings.GOVERNANCE_VAULT_KEY = f"{new},{old}"
    assert vault_rotate(batch_size=2) == (5, 2)

    settings.GOVERNANCE_VAULT_KEY = new
    for n in range(5):
        assert vault_entries(conversation_key=f"kept-{n}") == {"<PERSON_1>": f"Person {n}"}
    for key in ("lost-1", "lost-2"):
        with pytest.raises(InvalidToken):
            vault_entries(conversation_key=key)
