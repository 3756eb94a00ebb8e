"""The kinds of data a retention policy gives a period to, and the legal minimum of each.

A period is a number of days after which a row of that kind is deleted (what "age" means is per kind, below);
no period keeps the kind for ever. A period shorter than the kind's minimum is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataKind:
    key: str
    label: str
    age: str  # what the period counts from
    minimum_days: int
    minimum_reason: str


# The four memory scopes share one age and one minimum; only the scope and its label differ.
_MEMORY_SCOPE_LABELS = {
    "organisation": "Memories for the whole organisation",
    "role": "Memories for a role",
    "customer": "Memories about a customer",
    "user": "Personal memories",
}


def _memory_kind(scope: str, label: str) -> DataKind:
    return DataKind(
        key=f"memories_{scope}",
        label=label,
        age="their last use or change",
        minimum_days=30,
        minimum_reason="a memory must survive at least one review cycle of a month",
    )


KINDS: list[DataKind] = [
    DataKind("conversations", "Conversations and their messages", "the last message", 30,
             "conversations are the evidence behind the audit trail's AI events; investigations need at least a month"),
    DataKind("vaults", "Pseudonymization vaults", "their last change", 30,
             "a vault restores the placeholders of a conversation still open; it must outlive a working month"),
    DataKind("uploads", "Uploaded original documents (the searchable text stays)", "the upload", 90,
             "originals are needed to re-process a document after a model change; keep them a quarter"),
    DataKind("usage", "AI usage rows (costs, tokens)", "the call", 400,
             "usage rows are the cost records behind budgets and invoices: a financial year plus a month"),
    *(_memory_kind(scope, label) for scope, label in _MEMORY_SCOPE_LABELS.items()),
    DataKind("interactions", "Customer interactions", "the interaction", 365,
             "the interaction history answers complaints and disputes for at least a year"),
    DataKind("audit_exports", "Background audit export files", "the export", 1,
             "whoever asked needs a day to download the file"),
]  # fmt: skip
KIND_BY_KEY = {kind.key: kind for kind in KINDS}
MEMORY_SCOPE_OF_KIND = {f"memories_{scope}": scope for scope in _MEMORY_SCOPE_LABELS}
