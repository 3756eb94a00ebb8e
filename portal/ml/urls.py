from __future__ import annotations

from django.urls import path

from portal.ml import views

app_name = "ml"

urlpatterns = [
    path("", views.overview_view, name="overview"),
    path("train/", views.train_view, name="train"),
    path("runs/<int:run_id>/", views.run_detail_view, name="run_detail"),
    path("models/<int:model_id>/", views.model_detail_view, name="model_detail"),
    path("models/<int:model_id>/activate/", views.model_activate_view, name="model_activate"),
    path("models/<int:model_id>/retire/", views.model_retire_view, name="model_retire"),
    path("relabel/", views.relabel_view, name="relabel"),
    path("relabel/<int:message_id>/", views.relabel_set_view, name="relabel_set"),
    path("flags/", views.flags_view, name="flags"),
    path("flags/<int:flag_id>/review/", views.flag_review_view, name="flag_review"),
]
