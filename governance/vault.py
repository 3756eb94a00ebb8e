"""Per-conversation pseudonymization vaults, encrypted at rest with Fernet.

A vault maps placeholders (<PERSON_1>) to the values they stand for in one conversation. The same value
gets the same placeholder in every turn of that conversation; other conversations have their own vault,
so a placeholder never resolves to another conversation's value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from governance.models import ConversationVault

ERROR_VAULT_KEY = "The pseudonymization vault key is missing or invalid (GOVERNANCE_VAULT_KEY)."


def vault_keys() -> list[bytes]:
    """GOVERNANCE_VAULT_KEY: one Fernet key, or several separated by commas. The first encrypts; all
    decrypt, so a new key can be put first and the old ones kept until `manage.py vault_rotate` has
    re-encrypted every vault with the new one."""
    configured = getattr(settings, "GOVERNANCE_VAULT_KEY", "")
    raw = configured.decode() if isinstance(configured, bytes) else str(configured or "")
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    if not keys:
        raise RuntimeError(ERROR_VAULT_KEY)
    return keys


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in vault_keys()])
    except ValueError as error:
        raise RuntimeError(ERROR_VAULT_KEY) from error


def placeholder_for(data_class: str, number: int) -> str:
    return f"<{data_class}_{number}>"


@dataclass
class Vault:
    conversation_key: str
    entries: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    counters: dict[str, int] = field(default_factory=dict)
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    changed: bool = False

    def __post_init__(self) -> None:
        for placeholder, value in self.entries.items():
            data_class = placeholder[1:-1].rsplit("_", 1)[0]
            self._by_value[(data_class, value)] = placeholder

    def __repr__(self) -> str:  # never print the values
        return f"Vault({self.conversation_key!r}, {len(self.entries)} entries)"

    def placeholder(self, data_class: str, value: str) -> str:
        existing = self._by_value.get((data_class, value))
        if existing:
            return existing
        number = self.counters.get(data_class, 0) + 1
        self.counters[data_class] = number
        placeholder = placeholder_for(data_class, number)
        self.entries[placeholder] = value
        self._by_value[(data_class, value)] = placeholder
        self.changed = True
        return placeholder

    def encrypt(self) -> str:
        payload = json.dumps({"entries": self.entries, "counters": self.counters}, ensure_ascii=False)
        return _fernet().encrypt(payload.encode()).decode()

    @classmethod
    def decrypt(cls, conversation_key: str, ciphertext: str) -> Vault:
        data = json.loads(_fernet().decrypt(ciphertext.encode()))
        return cls(conversation_key, dict(data["entries"]), {k: int(v) for k, v in data["counters"].items()})


def vault_open(*, conversation_key: str, lock: bool = True) -> Vault:
    """The conversation's vault (empty if new). With lock=True the caller must be in a transaction and
    holds the row until it commits, so two turns of one conversation never hand out the same number."""
    if lock:
        # Create the row first (a no-op when it exists), so even the first two turns of a new
        # conversation queue on its lock; no savepoint needed, the insert cannot fail on a duplicate.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {ConversationVault._meta.db_table} (conversation_key, ciphertext, created_at, updated_at)"
                " VALUES (%s, %s, now(), now()) ON CONFLICT (conversation_key) DO NOTHING",  # noqa: S608
                [conversation_key, Vault(conversation_key).encrypt()],
            )
        row = ConversationVault.objects.select_for_update().only("ciphertext").get(conversation_key=conversation_key)
    else:
        found = ConversationVault.objects.filter(conversation_key=conversation_key).only("ciphertext").first()
        if found is None:
            return Vault(conversation_key)
        row = found
    return Vault.decrypt(conversation_key, row.ciphertext)


def vault_save(*, vault: Vault) -> None:
    """Write a changed vault back; the caller holds its row (vault_open with lock=True)."""
    if not vault.changed:
        return
    ConversationVault.objects.filter(conversation_key=vault.conversation_key).update(
        ciphertext=vault.encrypt(), updated_at=timezone.now()
    )
    vault.changed = False


def vault_entries(*, conversation_key: str) -> dict[str, str]:
    """Placeholder -> value for re-identifying an answer (no lock)."""
    return dict(vault_open(conversation_key=conversation_key, lock=False).entries)


def vault_rotate(*, batch_size: int = 200) -> tuple[int, int]:
    """Re-encrypt every vault with the first configured key; returns (rotated, unreadable).

    Each row is locked while it is rewritten, so a conversation in flight waits for it. A vault that no
    configured key can read is left as it is and counted.
    """
    fernet = _fernet()
    rotated = unreadable = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            rows = list(
                ConversationVault.objects.select_for_update()
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .only("pk", "ciphertext")[:batch_size]
            )
            if not rows:
                return rotated, unreadable
            for row in rows:
                try:
                    row.ciphertext = fernet.rotate(row.ciphertext.encode()).decode()
                except InvalidToken:
                    unreadable += 1
                    continue
                row.updated_at = timezone.now()
                row.save(update_fields=["ciphertext", "updated_at"])
                rotated += 1
            last_pk = rows[-1].pk
