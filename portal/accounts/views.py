from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from portal.accounts.backends import password_login_everyone
from portal.accounts.errors import SsoRefused, SsoUnavailable
from portal.accounts.forms import PortalAuthenticationForm, UserCreateForm, UserEditForm, UserFilterForm
from portal.accounts.selectors import user_get_for_management, user_list
from portal.accounts.services import sso_refusal_record, user_create, user_update
from portal.accounts.sso import BACKEND_PATH, PortalOIDCBackend, provider_reachable, sso_configured
from portal.core.types import PortalRequest
from portal.core.views import form_save_or_show

logger = logging.getLogger(__name__)
USERS_PER_PAGE = 50
SESSION_ID_TOKEN = "oidc_id_token"


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True
    authentication_form = PortalAuthenticationForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = sso_configured()
        context["sso_label"] = settings.SSO_BUTTON_LABEL
        context["password_login_everyone"] = password_login_everyone() or not sso_configured()
        return context


class LogoutView(auth_views.LogoutView):
    """Ends the portal session and, after a single sign-on, the provider's session too (RP-initiated logout)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        id_token = request.session.get(SESSION_ID_TOKEN)
        response = super().post(request, *args, **kwargs)
        if id_token and settings.OIDC_OP_LOGOUT_ENDPOINT:
            query = urlencode({"id_token_hint": id_token,
                               "post_logout_redirect_uri": request.build_absolute_uri(reverse("login"))})  # fmt: skip
            return HttpResponseRedirect(f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{query}")
        return response


def _sso_unavailable(request: HttpRequest) -> HttpResponse:
    context = {"break_glass": not password_login_everyone()}
    return render(request, "accounts/sso_unavailable.html", context, status=503)


def _sso_refused(request: HttpRequest, refused: SsoRefused) -> HttpResponse:
    sso_refusal_record(refused=refused, request=request)
    logger.warning("sso: sign-in refused (%s)", refused.reason)
    return render(request, "accounts/sso_failed.html", {"reason": refused.message}, status=403)


@require_GET
def sso_start_view(request: HttpRequest) -> HttpResponse:
    """Send the browser to the identity provider (mozilla-django-oidc stores state, nonce and PKCE verifier)."""
    if not sso_configured():
        raise Http404("Single sign-on is not configured.")
    if not provider_reachable():
        return _sso_unavailable(request)
    response: HttpResponse = OIDCAuthenticationRequestView.as_view()(request)
    return response


@require_GET
def sso_callback_view(request: HttpRequest) -> HttpResponse:
    """The provider sends the browser back here with a code: exchange it, check the ID token, sign in."""
    if not sso_configured():
        raise Http404("Single sign-on is not configured.")
    states = request.session.get("oidc_states", {})
    state = request.GET.get("state", "")
    flow = states.pop(state, None) if state else None
    if flow is not None:
        request.session["oidc_states"] = states  # used once: the same answer cannot be replayed
        request.session.save()
    if request.GET.get("error"):
        return _sso_refused(request, SsoRefused("provider_error", error=request.GET["error"][:100]))
    if flow is None or not request.GET.get("code"):
        return _sso_refused(request, SsoRefused("state"))
    backend = PortalOIDCBackend()
    try:
        user = backend.authenticate(
            request, portal_sso=True, nonce=flow.get("nonce"), code_verifier=flow.get("code_verifier")
        )
    except SsoRefused as refused:
        return _sso_refused(request, refused)
    except SsoUnavailable:
        return _sso_unavailable(request)
    if user is None:
        return _sso_refused(request, SsoRefused("malformed"))
    if not user.is_active:
        return _sso_refused(request, SsoRefused("account_inactive"))
    next_url = request.session.get("oidc_login_next") or resolve_url(settings.LOGIN_REDIRECT_URL)
    id_token = request.session.get(SESSION_ID_TOKEN)
    user.backend = BACKEND_PATH  # also tells the sign-in's audit event the method
    auth.login(request, user)
    if id_token:
        request.session[SESSION_ID_TOKEN] = id_token
    return HttpResponseRedirect(next_url)


@login_required
@require_http_methods(["GET"])
def user_list_view(request: PortalRequest) -> HttpResponse:
    form = UserFilterForm(request.GET or None)
    search = role = ""
    if form.is_valid():
        search = form.cleaned_data["q"]
        role = form.cleaned_data["role"]
    users = user_list(actor=request.user, search=search, role=role)
    page = Paginator(users, USERS_PER_PAGE).get_page(request.GET.get("page"))
    template = "accounts/user_list.html#user-table" if request.htmx else "accounts/user_list.html"
    return render(request, template, {"form": form, "page": page})


@login_required
@require_http_methods(["GET", "POST"])
def user_create_view(request: PortalRequest) -> HttpResponse:
    user_list(actor=request.user)  # permission check
    form = UserCreateForm(request.POST or None)

    def save() -> HttpResponse:
        data = form.cleaned_data
        user = user_create(
            actor=request.user,
            username=data["username"],
            password=data["password1"],
            email=data["email"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            role_names=data["roles"],
        )
        messages.success(request, f"User {user.username} created.")
        return redirect("accounts:user_list")

    def refused(error: ValidationError) -> None:
        form.add_error("password1" if "password" in str(error).lower() else None, error)

    return form_save_or_show(
        request, form, save=save, refused=refused, template="accounts/user_form.html", context={"creating": True}
    )


@login_required
@require_http_methods(["GET", "POST"])
def user_edit_view(request: PortalRequest, user_id: int) -> HttpResponse:
    user = user_get_for_management(actor=request.user, user_id=user_id)
    initial = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": user.is_active,
        "roles": list(user.groups.values_list("name", flat=True)),
    }
    form = UserEditForm(request.POST or None, initial=initial)

    def save() -> HttpResponse:
        data = form.cleaned_data
        user_update(
            actor=request.user,
            user=user,
            email=data["email"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            is_active=data["is_active"],
            role_names=data["roles"],
        )
        messages.success(request, f"User {user.username} saved.")
        return redirect("accounts:user_list")

    context = {"managed_user": user, "creating": False}
    return form_save_or_show(request, form, save=save, template="accounts/user_form.html", context=context)
