from __future__ import annotations

from typing import Any

import pytest

from knowledge import selectors
from knowledge.demo import DEMO_KNOWLEDGE_BASE, demo_knowledge_ensure
from knowledge.models import Document, DocumentStatus, KnowledgeBase

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("eager_tasks")
def test_the_demo_knowledge_base_is_ingested_once_and_searchable_by_staff(
    sam: Any, oscar: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        knowledge_base = demo_knowledge_ensure()
    assert knowledge_base is not None
    documents = Document.objects.filter(knowledge_base=knowledge_base)
    assert documents.count() >= 4
    assert set(documents.values_list("status", flat=True)) == {DocumentStatus.READY}
    pdf = documents.get(original_filename__endswith=".pdf")
    assert pdf.page_count and pdf.page_count > 1

    found = selectors.retrieve(user=sam, query="hotel limit per night in London", k=3, audit_event=False)
    assert found and found[0].document_title == "Travel and Expense Policy" and found[0].page_number == 2
    assert selectors.retrieve(user=oscar, query="hotel limit", audit_event=False) == []

    assert demo_knowledge_ensure() is None  # a second start changes nothing
    assert KnowledgeBase.objects.filter(name=DEMO_KNOWLEDGE_BASE).count() == 1
