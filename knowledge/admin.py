from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from knowledge.models import Document, KnowledgeBase


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(GuardedModelAdmin):
    list_display = ["name", "classification", "owner", "embedding_model", "created_at"]
    search_fields = ["name", "description"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "knowledge_base", "status", "version", "chunk_count", "updated_at"]
    list_filter = ["status", "knowledge_base"]
    search_fields = ["title", "original_filename", "sha256"]
    readonly_fields = ["sha256", "size", "status", "error", "chunk_count", "generation", "active_generation"]
