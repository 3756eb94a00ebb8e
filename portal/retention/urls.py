from __future__ import annotations

from django.urls import path

from portal.retention import views

app_name = "retention"

urlpatterns = [
    path("", views.overview_view, name="overview"),
    path("policy/", views.policy_publish_view, name="policy_publish"),
    path("run/", views.run_now_view, name="run_now"),
    path("holds/", views.hold_place_view, name="hold_place"),
    path("holds/<int:hold_id>/lift/", views.hold_lift_view, name="hold_lift"),
]
