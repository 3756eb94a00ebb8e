from __future__ import annotations

from django.urls import path

from portal.customers import views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list_view, name="customer_list"),
    path("new/", views.customer_create_view, name="customer_create"),
    path("import/", views.customer_import_view, name="customer_import"),
    path("export.csv", views.customer_export_view, name="customer_export"),
    path("interactions/import/", views.interaction_import_view, name="interaction_import"),
    path("<int:customer_id>/", views.customer_detail_view, name="customer_detail"),
    path("<int:customer_id>/edit/", views.customer_edit_view, name="customer_edit"),
    path("<int:customer_id>/access/", views.customer_access_view, name="customer_access"),
    path("<int:customer_id>/delete/", views.customer_delete_view, name="customer_delete"),
    path("<int:customer_id>/ask/", views.customer_ask_view, name="customer_ask"),
    path("<int:customer_id>/interactions/", views.interaction_create_view, name="interaction_create"),
]
