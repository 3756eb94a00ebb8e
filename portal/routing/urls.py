from __future__ import annotations

from django.urls import path

from portal.routing import views

app_name = "routing"

urlpatterns = [
    path("usage/", views.usage_view, name="usage"),
    path("models/", views.catalog_view, name="catalog"),
    path("models/<int:model_id>/test", views.model_test_view, name="model_test"),
    path("budgets/", views.budgets_view, name="budgets"),
    path("budgets/<int:budget_id>/", views.budget_edit_view, name="budget_edit"),
    path("budgets/<int:budget_id>/delete", views.budget_delete_view, name="budget_delete"),
]
