from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from portal import readiness
from portal.accounts.views import LoginView, LogoutView, sso_callback_view, sso_start_view
from portal.core import views as core_views

admin.site.site_header = "Hybrid AI portal administration"

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("settings/", core_views.settings_view, name="settings"),
    path("settings/save", core_views.settings_save_view, name="settings_save"),
    path("settings/restore/<int:number>", core_views.settings_restore_view, name="settings_restore"),
    path("readyz", readiness.readyz, name="readyz"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("sso/start/", sso_start_view, name="sso_start"),
    path("sso/callback/", sso_callback_view, name="sso_callback"),
    path("accounts/", include("portal.accounts.urls")),
    path("assistant/", include("portal.assistant.urls")),
    path("audit/", include("audit.urls")),
    path("knowledge/", include("knowledge.urls")),
    path("customers/", include("portal.customers.urls")),
    path("memory/", include("portal.memory.urls")),
    path("governance/", include("governance.urls")),
    path("routing/", include("portal.routing.urls")),
    path("ml/", include("portal.ml.urls")),
    path("workflows/", include("portal.workflows.urls")),
    path("retention/", include("portal.retention.urls")),
    path("subjects/", include("portal.subjects.urls")),
    path("admin/", admin.site.urls),
]
