"""Finding a person's values in every table: introspected from the models, so a new app's columns are covered.

Every concrete CharField, TextField, JSONField and array of those, of every installed app's models, is searched
with a case-insensitive substring match (ILIKE) for each value; the pseudonymization vaults, which are encrypted,
are decrypted and their entries compared. The same column list drives the scrub that replaces values by the
tombstone in rows kept for another reason.

Limits (documented in the README): the match is exact up to case (not accent-folded, not separator-folded: a
phone is searched in the spellings `phone_variants` gives), and a value inside JSON is matched in the column's
text form, so a value holding a double quote or a backslash would be missed there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib.postgres.fields import ArrayField
from django.db import connection, models

TOMBSTONE = "[erased]"
MIN_VALUE_CHARS = 3  # shorter values would match everywhere
VAULT_TABLE_LABEL = "governance_conversationvault (decrypted entries)"


@dataclass(frozen=True)
class TextColumn:
    table: str
    column: str
    kind: str  # "text" | "json" | "array"
    db_type: str
    max_length: int | None


def _column_kind(field: models.Field[Any, Any]) -> str | None:
    if isinstance(field, models.GeneratedField):
        return None
    if isinstance(field, ArrayField):
        return "array" if isinstance(field.base_field, (models.CharField, models.TextField)) else None
    if isinstance(field, models.JSONField):
        return "json"
    if isinstance(field, (models.CharField, models.TextField)):
        return "text"
    return None


def text_columns() -> dict[str, list[TextColumn]]:
    """{table: its text columns} for every installed model with a table of its own."""
    tables: dict[str, list[TextColumn]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy:
            continue
        for field in meta.concrete_fields:
            kind = _column_kind(field)
            if kind is None:
                continue
            columns = tables.setdefault(meta.db_table, [])
            if any(column.column == field.column for column in columns):
                continue
            max_length = getattr(field, "max_length", None) if kind == "text" else None
            db_type = str(field.db_type(connection) or "text")
            columns.append(TextColumn(meta.db_table, str(field.column), kind, db_type, max_length))
    return dict(sorted(tables.items()))


def clean_values(values: Iterable[str]) -> list[str]:
    """Distinct (case-insensitively) values long enough to search for, longest first."""
    seen: dict[str, str] = {}
    for value in values:
        value = (value or "").strip()
        if len(value) >= MIN_VALUE_CHARS and value.casefold() not in seen:
            seen[value.casefold()] = value
    return sorted(seen.values(), key=lambda value: (-len(value), value))


def like_patterns(values: list[str]) -> list[str]:
    escaped = (value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for value in values)
    return [f"%{value}%" for value in escaped]


def _regex(values: list[str]) -> str:
    # Postgres regular expressions: a backslash before a non-alphanumeric character is that character
    return "(" + "|".join(re.sub(r"([^\w\s])", r"\\\1", value) for value in values) + ")"


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def _where(columns: list[TextColumn]) -> str:
    return " OR ".join(f"{_qn(column.column)}::text ILIKE ANY(%s)" for column in columns)


def count_rows_with_values(values: list[str], *, exclude: dict[str, list[int]] | None = None) -> dict[str, int]:
    """{table: rows with at least one value in a text column}, for every table (zeros included), plus the vaults.

    `exclude`: {table: ids} of rows not to count (the subject's own record while it still exists).
    """
    if not values:
        return {}
    patterns = like_patterns(values)
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table, columns in text_columns().items():
            sql = f"SELECT count(*) FROM {_qn(table)} WHERE ({_where(columns)})"  # noqa: S608 - names from models
            parameters: list[Any] = [patterns] * len(columns)
            if exclude and exclude.get(table):
                sql += " AND id <> ALL(%s)"
                parameters.append(exclude[table])
            cursor.execute(sql, parameters)
            counts[table] = int(cursor.fetchone()[0])
    counts[VAULT_TABLE_LABEL] = vaults_with_values(values)
    return counts


def _entry_matches(entry: str, folded_values: list[str]) -> bool:
    folded = entry.casefold()
    return any(value in folded for value in folded_values)


def vaults_with_values(values: list[str]) -> int:
    """How many vaults hold one of the values (decrypted with GOVERNANCE_VAULT_KEY; unreadable ones are skipped)."""
    from cryptography.fernet import InvalidToken

    from governance.models import ConversationVault
    from governance.vault import Vault

    folded = [value.casefold() for value in values]
    found = 0
    for key, ciphertext in ConversationVault.objects.values_list("conversation_key", "ciphertext").iterator(500):
        try:
            vault = Vault.decrypt(key, ciphertext)
        except (InvalidToken, ValueError, KeyError):
            continue
        if any(_entry_matches(value, folded) for value in vault.entries.values()):
            found += 1
    return found


def scrub_values(
    values: list[str], *, skip_tables: set[str], exclude: dict[str, list[int]] | None = None
) -> dict[str, int]:
    """Replace every value by the tombstone in every text column of every table but `skip_tables`.

    Returns {table: rows changed} (tables with changes only). The caller holds the transaction.
    """
    if not values:
        return {}
    patterns, regex = like_patterns(values), _regex(values)
    changed: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table, columns in text_columns().items():
            if table in skip_tables:
                continue
            assignments = []
            parameters: list[Any] = []
            for column in columns:
                replaced = f"regexp_replace({_qn(column.column)}::text, %s, %s, 'gi')"
                if column.kind == "text" and column.max_length:
                    replaced = f"left({replaced}, {int(column.max_length)})"
                if column.kind != "text":
                    replaced = f"({replaced})::{column.db_type}"
                assignments.append(f"{_qn(column.column)} = {replaced}")
                parameters += [regex, TOMBSTONE]
            sql = f"UPDATE {_qn(table)} SET {', '.join(assignments)} WHERE ({_where(columns)})"  # noqa: S608
            parameters += [patterns] * len(columns)
            if exclude and exclude.get(table):
                sql += " AND id <> ALL(%s)"
                parameters.append(exclude[table])
            cursor.execute(sql, parameters)
            if cursor.rowcount:
                changed[table] = cursor.rowcount
    vaults = scrub_vaults(values)
    if vaults:
        changed[VAULT_TABLE_LABEL] = vaults
    return changed


def scrub_vaults(values: list[str]) -> int:
    """Replace the values in vault entries by the tombstone (the placeholders stay, so old answers still render)."""
    from cryptography.fernet import InvalidToken

    from governance.models import ConversationVault
    from governance.vault import Vault

    folded = [value.casefold() for value in values]
    changed = 0
    for row in ConversationVault.objects.select_for_update().only("pk", "conversation_key", "ciphertext"):
        try:
            vault = Vault.decrypt(row.conversation_key, row.ciphertext)
        except (InvalidToken, ValueError, KeyError):
            continue
        hits = [placeholder for placeholder, value in vault.entries.items() if _entry_matches(value, folded)]
        if not hits:
            continue
        for placeholder in hits:
            vault.entries[placeholder] = TOMBSTONE
        ConversationVault.objects.filter(pk=row.pk).update(ciphertext=vault.encrypt())
        changed += 1
    return changed


def documents_mentioning(values: list[str]) -> list[dict[str, int]]:
    """Documents of knowledge bases whose chunks (the search index) or title hold a value, for an officer."""
    from knowledge.models import Chunk, Document

    if not values:
        return []
    patterns = like_patterns(values)
    chunk_table, document_table = Chunk._meta.db_table, Document._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT d.id, d.knowledge_base_id, count(c.id) FROM {document_table} d "  # noqa: S608
            f"LEFT JOIN {chunk_table} c ON c.document_id = d.id AND c.text ILIKE ANY(%s) "
            "GROUP BY d.id, d.knowledge_base_id HAVING count(c.id) > 0 OR bool_or(d.title ILIKE ANY(%s)) "
            "ORDER BY d.id",
            [patterns, patterns],
        )
        return [{"document_id": row[0], "knowledge_base_id": row[1], "chunks": int(row[2])}
                for row in cursor.fetchall()]  # fmt: skip
