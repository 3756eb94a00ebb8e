"""The demo knowledge base: a fictional bicycle company's handbook, policies and FAQ.

Created on the first start of the demo organisation; the files are queued for ingestion like any upload,
so the Celery worker started by `manage.py run` makes them searchable within a minute.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import Group
from django.db import transaction

from governance.roles import ADMINISTRATOR, GOVERNANCE_OFFICER, STAFF
from knowledge import services
from knowledge.models import Classification, KnowledgeBase
from knowledge.pdf import pages_from_text, write_text_pdf

DEMO_KNOWLEDGE_BASE = "Larkspur company handbook"
DEMO_DESCRIPTION = (
    "Handbook, policies and FAQ of Larkspur Bicycle Works, the demo company: working hours, leave, "
    "travel and expenses, IT security, shop locations."
)
CONTENT_DIR = Path(__file__).resolve().parent / "demo_content"
# The PDF is generated from a text source (no PDF library that writes is installed).
PDF_SOURCES = {"travel_and_expense_policy.pdf": ("travel_and_expense_policy.txt", "Travel and Expense Policy")}
FILE_DOCUMENTS = {
    "employee_handbook.md": "Employee Handbook",
    "it_security_policy.html": "IT and Data Security Policy",
    "faq.md": "Frequently asked questions",
    "office_locations.csv": "Office and shop locations",
}


def demo_files() -> list[tuple[str, str, bytes]]:
    """(filename, title, content) of every demo document."""
    files = []
    for filename, (source, title) in PDF_SOURCES.items():
        text = (CONTENT_DIR / source).read_text(encoding="utf-8")
        files.append((filename, title, write_text_pdf(pages_from_text(text), title=title)))
    for filename, title in FILE_DOCUMENTS.items():
        files.append((filename, title, (CONTENT_DIR / filename).read_bytes()))
    return files


@transaction.atomic
def demo_knowledge_ensure() -> KnowledgeBase | None:
    """Create and fill the demo knowledge base once; later starts leave it (and any edits) alone."""
    if KnowledgeBase.objects.filter(name=DEMO_KNOWLEDGE_BASE).exists():
        return None
    knowledge_base = services.knowledge_base_create(
        actor=None, name=DEMO_KNOWLEDGE_BASE, description=DEMO_DESCRIPTION, classification=Classification.INTERNAL
    )
    grants = {STAFF: "view", GOVERNANCE_OFFICER: "view", ADMINISTRATOR: "manage"}
    for role_name, level in grants.items():
        group = Group.objects.filter(name=role_name).first()
        if group is not None:
            services.knowledge_base_grant(actor=None, knowledge_base=knowledge_base, level=level, group=group)
    for filename, title, content in demo_files():
        services.document_upload(
            actor=None, knowledge_base=knowledge_base, filename=filename, data=content, title=title
        )
    return knowledge_base
