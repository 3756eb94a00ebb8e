"""Site-admin screens for knowledge bases and documents, audited through audit.admin.

What the search filters on must not change in place: a document's knowledge base (its chunks and
postings carry copies of it; moving goes through `document_move`, on the document's page) and the
chunks themselves (not registered here). Deletes go through `document_delete`, which also takes the
document out of the BM25 statistics and removes the stored file. Non-superusers see only the knowledge
bases they manage and the documents of those they may change, as on the portal's own pages.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import AuditedGuardedModelAdmin, AuditedModelAdmin
from knowledge import selectors, services
from knowledge.models import Document, KnowledgeBase

DOCUMENT_FIELDS = (
    "title", "knowledge_base", "restricted_to_roles", "original_filename", "content_type", "size", "sha256",
    "version", "status", "error", "page_count", "chunk_count", "generation", "active_generation", "uploaded_by",
    "processed_at",
)  # fmt: skip


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(AuditedGuardedModelAdmin):
    audit_object_repr = True  # the base's name
    list_display = ["name", "classification", "unlisted", "owner", "embedding_model", "created_at"]
    list_filter = ["classification", "unlisted"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "classification", "owner", "embedding_model", "embedding_dimension"]
    # the embedding model changes with `manage.py reindex`, never by editing the row
    readonly_fields = ["owner", "embedding_model", "embedding_dimension"]
    user_can_access_permitted_objects_only = True
    permitted_objects_perms = ["manage_knowledgebase"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created on the Knowledge page, which also grants the creator access

    def delete_model(self, request: HttpRequest, obj: KnowledgeBase) -> None:
        for document in Document.objects.filter(knowledge_base=obj):
            services.document_delete(actor=request.user, document=document)  # type: ignore[arg-type]
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[KnowledgeBase]) -> None:
        for knowledge_base in queryset:
            self.delete_model(request, knowledge_base)


@admin.register(Document)
class DocumentAdmin(AuditedModelAdmin):
    audit_deletions_in_service = True  # document_delete writes "knowledge.document_deleted"
    list_display = ["title", "knowledge_base", "status", "version", "chunk_count", "updated_at"]
    # only the bases of the documents listed: a plain filter would name every base, also unreadable ones
    list_filter = ["status", ("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["title", "original_filename", "sha256"]
    fields = DOCUMENT_FIELDS
    # Only the roles a document is restricted to may change here (the search reads them at query time).
    # The title is part of every chunk's embedding and lexical text, so it changes with a new upload.
    readonly_fields = tuple(name for name in DOCUMENT_FIELDS if name != "restricted_to_roles")
    filter_horizontal = ["restricted_to_roles"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        documents = super().get_queryset(request)
        if request.user.is_superuser:
            return documents
        editable = selectors.knowledge_bases_for_user(user=request.user, permission="change")
        return documents.filter(knowledge_base__in=editable)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploaded on the knowledge base's page, then ingested

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.document_delete(actor=request.user, document=obj)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            services.document_delete(actor=request.user, document=document)  # type: ignore[arg-type]
