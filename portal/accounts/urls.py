from __future__ import annotations

from django.urls import path

from portal.accounts import views

app_name = "accounts"

urlpatterns = [
    path("users/", views.user_list_view, name="user_list"),
    path("users/new/", views.user_create_view, name="user_create"),
    path("users/<int:user_id>/", views.user_edit_view, name="user_edit"),
]
