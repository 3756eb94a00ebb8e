from __future__ import annotations

from django.urls import path

from knowledge import views

app_name = "knowledge"

urlpatterns = [
    path("", views.knowledge_base_list, name="knowledge_base_list"),
    path("new", views.knowledge_base_create, name="knowledge_base_create"),
    path("search/", views.search, name="search"),
    path("<int:pk>/", views.knowledge_base_detail, name="knowledge_base_detail"),
    path("<int:pk>/access", views.knowledge_base_grant, name="knowledge_base_grant"),
    path("<int:pk>/upload", views.document_upload, name="document_upload"),
    path("documents/<int:pk>/", views.document_detail, name="document_detail"),
    path("documents/<int:pk>/status", views.document_status, name="document_status"),
    path("documents/<int:pk>/download", views.document_download, name="document_download"),
    path("documents/<int:pk>/reprocess", views.document_reprocess, name="document_reprocess"),
    path("documents/<int:pk>/restrict", views.document_restrict, name="document_restrict"),
    path("documents/<int:pk>/move", views.document_move, name="document_move"),
    path("documents/<int:pk>/delete", views.document_delete, name="document_delete"),
]
