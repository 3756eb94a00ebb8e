from __future__ import annotations

from django.urls import path

from portal.workflows import views

app_name = "workflows"

urlpatterns = [
    path("", views.workflow_list_view, name="workflow_list"),
    path("new/", views.workflow_edit_view, name="workflow_create"),
    path("import/", views.workflow_import_view, name="workflow_import"),
    path("approvals/", views.approvals_view, name="approvals"),
    path("approvals/<int:step_run_id>/", views.approval_detail_view, name="approval_detail"),
    path("<int:workflow_id>/", views.workflow_detail_view, name="workflow_detail"),
    path("<int:workflow_id>/edit/", views.workflow_edit_view, name="workflow_edit"),
    path("<int:workflow_id>/export/", views.workflow_export_view, name="workflow_export"),
    path("<int:workflow_id>/run/", views.run_start_view, name="run_start"),
    path("<int:workflow_id>/access/", views.workflow_access_view, name="workflow_access"),
    path("<int:workflow_id>/versions/<int:number>/", views.version_detail_view, name="version_detail"),
    path("<int:workflow_id>/versions/<int:number>/restore/", views.version_restore_view, name="version_restore"),
    path("runs/<int:run_id>/", views.run_detail_view, name="run_detail"),
    path("runs/<int:run_id>/cancel/", views.run_cancel_view, name="run_cancel"),
]
