from __future__ import annotations

from django.urls import path

from governance import views

app_name = "governance"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("policy/", views.policy_edit, name="policy_edit"),
    path("policy/preview/", views.policy_preview, name="policy_preview"),
    path("versions/", views.version_list, name="version_list"),
    path("versions/<int:version_id>/", views.version_detail, name="version_detail"),
    path("versions/<int:version_id>/restore/", views.version_restore, name="version_restore"),
    path("labels/", views.labels, name="labels"),
    path("terms/", views.term_list_index, name="term_lists"),
    path("terms/<int:term_list_id>/", views.term_list_edit, name="term_list_edit"),
    path("terms/<int:term_list_id>/delete/", views.term_list_remove, name="term_list_delete"),
    path("simulator/", views.simulator, name="simulator"),
]
