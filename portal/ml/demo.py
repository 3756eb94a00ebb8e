"""The demo organisation's local models: example questions, labelled knowledge bases, and one training
run per model, queued for the worker; each run activates its model only if it beats its baseline."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from governance.roles import ADMINISTRATOR, GOVERNANCE_OFFICER, STAFF
from knowledge import services as knowledge_services
from knowledge.models import Classification
from knowledge.selectors import knowledge_base_by_name
from portal.ml import services
from portal.ml.models import Purpose, TrainingRun

DATA_DIR = Path(__file__).resolve().parent / "data"
TASK_QUESTIONS = DATA_DIR / "task_questions.tsv"
DEMO_BASES = (
    (
        "Larkspur news and products",
        Classification.PUBLIC,
        "public_news_and_products.md",
        "Press releases, product pages and shop news (public).",
        {STAFF: "view", GOVERNANCE_OFFICER: "view"},
    ),
    (
        "Larkspur board and finance",
        Classification.CONFIDENTIAL,
        "confidential_board_and_finance.md",
        "Board minutes, margins, supplier prices, negotiations (confidential).",
        {GOVERNANCE_OFFICER: "view"},
    ),
    (
        "Larkspur people records",
        Classification.LOCAL_ONLY,
        "local_only_people_records.md",
        "Health, disciplinary and personal records of staff (local only).",
        {GOVERNANCE_OFFICER: "view"},
    ),
)
# Sensitivity last: its run must come after the demo documents' ingestion, queued just before these runs
# (the embedded broker orders messages by their millisecond, so neighbours may swap).
DEMO_PURPOSES = (
    Purpose.TASK_ROUTER,
    Purpose.INJECTION,
    Purpose.CUSTOMER_CHURN,
    Purpose.CUSTOMER_NEXT_CHANNEL,
    Purpose.SENSITIVITY,
)


def task_examples() -> list[tuple[str, str]]:
    examples = []
    for line in TASK_QUESTIONS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            task_type, text = line.split("\t", 1)
            examples.append((text.strip(), task_type.strip()))
    return examples


@transaction.atomic
def demo_knowledge_bases_ensure() -> int:
    created = 0
    for name, label, filename, description, grants in DEMO_BASES:
        if knowledge_base_by_name(name=name) is not None:
            continue
        knowledge_base = knowledge_services.knowledge_base_create(
            actor=None, name=name, description=description, classification=label
        )
        for role_name, level in {**grants, ADMINISTRATOR: "manage"}.items():
            group = Group.objects.filter(name=role_name).first()
            if group is not None:
                knowledge_services.knowledge_base_grant(
                    actor=None, knowledge_base=knowledge_base, level=level, group=group
                )
        path = DATA_DIR / "demo_sensitivity" / filename
        knowledge_services.document_upload(
            actor=None,
            knowledge_base=knowledge_base,
            filename=filename,
            data=path.read_bytes(),
            title=name.removeprefix("Larkspur ").capitalize(),
        )
        created += 1
    return created


def demo_ml_ensure() -> None:
    """Once: the examples and knowledge bases, then a training run per model (queued after the ingestion
    of the demo documents, so the sensitivity model sees them)."""
    services.demo_task_labels_ensure(examples=task_examples())
    demo_knowledge_bases_ensure()
    if not settings.ML_DEMO_TRAINING or TrainingRun.objects.exists():
        return
    for purpose in DEMO_PURPOSES:
        services.training_request(actor=None, purpose=purpose, parameters={"activate_if_better": True})
