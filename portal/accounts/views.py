from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal.accounts.forms import UserCreateForm, UserEditForm, UserFilterForm
from portal.accounts.selectors import user_get_for_management, user_list
from portal.accounts.services import user_create, user_update
from portal.core.types import PortalRequest

USERS_PER_PAGE = 50


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


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
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = user_create(
                actor=request.user,
                username=data["username"],
                password=data["password1"],
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                role_names=data["roles"],
            )
        except ValidationError as error:
            form.add_error("password1" if "password" in str(error).lower() else None, error)
        else:
            messages.success(request, f"User {user.username} created.")
            return redirect("accounts:user_list")
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/user_form.html", {"form": form, "creating": True}, status=status)


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
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user_update(
                actor=request.user,
                user=user,
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                is_active=data["is_active"],
                role_names=data["roles"],
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"User {user.username} saved.")
            return redirect("accounts:user_list")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "accounts/user_form.html", {"form": form, "managed_user": user, "creating": False}, status=status
    )
