from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list_view, name="event_list"),
    path("events/<int:seq>/", views.event_detail_view, name="event_detail"),
    path("export.csv", views.export_view, {"export_format": "csv"}, name="export_csv"),
    path("export.jsonl", views.export_view, {"export_format": "jsonl"}, name="export_jsonl"),
    path("exports/", views.export_list_view, name="export_list"),
    path("exports/new/", views.export_request_view, name="export_request"),
    path("exports/<int:export_id>/", views.export_status_view, name="export_status"),
    path("exports/<int:export_id>/download/", views.export_download_view, name="export_download"),
    path("verify/", views.verify_view, name="verify"),
    path("verify/<int:verification_id>/", views.verify_status_view, name="verify_status"),
]
