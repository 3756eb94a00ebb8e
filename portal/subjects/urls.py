from __future__ import annotations

from django.urls import path

from portal.subjects import views

app_name = "subjects"

urlpatterns = [
    path("", views.request_list_view, name="request_list"),
    path("new/", views.request_create_view, name="request_create"),
    path("mine/", views.request_own_copy_view, name="request_own_copy"),
    path("<int:request_id>/", views.request_detail_view, name="request_detail"),
    path("<int:request_id>/download/", views.bundle_download_view, name="bundle_download"),
    path("<int:request_id>/delete/", views.bundle_delete_view, name="bundle_delete"),
]
