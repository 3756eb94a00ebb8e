from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance import classes as dc
from governance.forms import PolicyForm, ReasonForm, SimulatorForm, TermListForm
from governance.gate import PromptPart
from governance.policy import document_diff, normalise_document
from governance.selectors import (
    knowledge_base_labels,
    policy_current,
    policy_draft_get,
    policy_version_get,
    policy_versions,
    require_policy_manager,
    role_names,
    term_list_get,
    term_lists,
)
from governance.services import (
    policy_draft_discard,
    policy_draft_save,
    policy_publish,
    policy_restore,
    term_list_delete,
    term_list_save,
)
from governance.simulator import simulate, simulation_destinations
from portal.core.types import PortalRequest
from portal.core.views import form_save_or_show


def _matrix_rows(document: dict[str, Any], roles: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "data_class": data_class,
            "description": dc.DATA_CLASS_DESCRIPTIONS[data_class],
            "actions": [document["roles"].get(role, {}).get("classes", {}).get(data_class, "") for role in roles],
        }
        for data_class in dc.DATA_CLASSES
    ]


@login_required
@require_GET
def overview(request: PortalRequest) -> HttpResponse:
    require_policy_manager(request.user)
    current = policy_current()
    roles = role_names()
    document = normalise_document(current.document, roles)
    draft = policy_draft_get(actor=request.user)
    context = {
        "current": current,
        "roles": roles,
        "rows": _matrix_rows(document, roles),
        "document": document,
        "draft": draft,
        "draft_changes": document_diff(document, draft.document) if draft else [],
        "action_descriptions": dc.ACTION_DESCRIPTIONS,
    }
    return render(request, "governance/overview.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def policy_edit(request: PortalRequest) -> HttpResponse:
    require_policy_manager(request.user)
    current = policy_current()
    roles = role_names()
    draft = policy_draft_get(actor=request.user)
    base = normalise_document(draft.document if draft else current.document, roles)
    form = PolicyForm(request.POST or None, roles=roles, document=base)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "save")
        if action == "discard":
            policy_draft_discard(actor=request.user)
            messages.info(request, "Draft discarded.")
            return redirect("governance:policy_edit")
        if form.is_valid():
            try:
                draft = policy_draft_save(actor=request.user, document=form.to_document())
                if action == "publish":
                    version = policy_publish(actor=request.user, reason=form.cleaned_data["reason"])
                    messages.success(request, f"Policy version {version.number} published; it applies from now on.")
                    return redirect("governance:version_detail", version_id=version.pk)
                messages.info(request, "Draft saved. It applies only once published.")
                return redirect("governance:policy_edit")
            except ValidationError as error:
                form.add_error("reason" if action == "publish" else None, error)
        status = 400
    changes = document_diff(normalise_document(current.document, roles), base)
    context = {
        "form": form,
        "current": current,
        "draft": draft,
        "changes": changes,
        "roles": roles,
        "action_descriptions": dc.ACTION_DESCRIPTIONS,
        "label_action_descriptions": dc.LABEL_ACTION_DESCRIPTIONS,
    }
    return render(request, "governance/policy_edit.html", context, status=status)


@login_required
@require_POST
def policy_preview(request: PortalRequest) -> HttpResponse:
    """The changes the matrix being edited would make, against the version in force (nothing is saved)."""
    require_policy_manager(request.user)
    current = policy_current()
    roles = role_names()
    current_document = normalise_document(current.document, roles)
    form = PolicyForm(request.POST, roles=roles, document=current_document)
    if not form.is_valid():
        return render(request, "governance/policy_edit.html#pending-changes", {"form": form}, status=400)
    context = {
        "current": current,
        "draft": policy_draft_get(actor=request.user),
        "changes": document_diff(current_document, normalise_document(form.to_document(), roles)),
    }
    return render(request, "governance/policy_edit.html#pending-changes", context)


@login_required
@require_GET
def version_list(request: PortalRequest) -> HttpResponse:
    versions = policy_versions(actor=request.user)
    return render(request, "governance/version_list.html", {"versions": versions, "current": versions.first()})


@login_required
@require_GET
def version_detail(request: PortalRequest, version_id: int) -> HttpResponse:
    version = policy_version_get(actor=request.user, version_id=version_id)
    roles = list(version.document.get("roles", {}))
    context = {
        "version": version,
        "current": policy_current(),
        "roles": roles,
        "rows": _matrix_rows(version.document, roles),
        "form": ReasonForm(initial={"reason": f"Restore version {version.number}"}),
    }
    return render(request, "governance/version_detail.html", context)


@login_required
@require_POST
def version_restore(request: PortalRequest, version_id: int) -> HttpResponse:
    version = policy_version_get(actor=request.user, version_id=version_id)
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            restored = policy_restore(actor=request.user, version=version, reason=form.cleaned_data["reason"])
        except ValidationError as error:
            form.add_error("reason", error)
        else:
            messages.success(request, f"Version {version.number} restored as version {restored.number}.")
            return redirect("governance:version_detail", version_id=restored.pk)
    roles = list(version.document.get("roles", {}))
    context = {
        "version": version,
        "current": policy_current(),
        "roles": roles,
        "rows": _matrix_rows(version.document, roles),
        "form": form,
    }
    return render(request, "governance/version_detail.html", context, status=400)


@login_required
@require_GET
def labels(request: PortalRequest) -> HttpResponse:
    bases = knowledge_base_labels(actor=request.user)
    roles = role_names()
    document = normalise_document(policy_current().document, roles)
    label_rows = [
        {
            "label": label,
            "description": dc.LABEL_DESCRIPTIONS[label],
            "actions": [document["roles"][role]["labels"][label] for role in roles],
            "bases": [base for base in bases if base["classification"] == label],
        }
        for label in dc.LABELS
    ]
    context = {"roles": roles, "label_rows": label_rows, "descriptions": dc.LABEL_ACTION_DESCRIPTIONS}
    return render(request, "governance/labels.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def term_list_index(request: PortalRequest) -> HttpResponse:
    lists = term_lists(actor=request.user)
    form = TermListForm(request.POST or None)

    def save() -> HttpResponse:
        term_list_save(actor=request.user, **form.cleaned_data)
        messages.success(request, f"Term list {form.cleaned_data['name']} created.")
        return redirect("governance:term_lists")

    return form_save_or_show(request, form, save=save, template="governance/term_lists.html", context={"lists": lists})


@login_required
@require_http_methods(["GET", "POST"])
def term_list_edit(request: PortalRequest, term_list_id: int) -> HttpResponse:
    item = term_list_get(actor=request.user, term_list_id=term_list_id)
    initial = {"name": item.name, "data_class": item.data_class, "description": item.description, "terms": item.terms}
    form = TermListForm(request.POST or None, initial=initial)

    def save() -> HttpResponse:
        term_list_save(actor=request.user, term_list=item, **form.cleaned_data)
        messages.success(request, f"Term list {item.name} saved.")
        return redirect("governance:term_lists")

    return form_save_or_show(
        request, form, save=save, template="governance/term_list_edit.html", context={"item": item}
    )


@login_required
@require_POST
def term_list_remove(request: PortalRequest, term_list_id: int) -> HttpResponse:
    item = term_list_get(actor=request.user, term_list_id=term_list_id)
    term_list_delete(actor=request.user, term_list=item)
    messages.success(request, f"Term list {item.name} deleted.")
    return redirect("governance:term_lists")


@login_required
@require_http_methods(["GET", "POST"])
def simulator(request: PortalRequest) -> HttpResponse:
    require_policy_manager(request.user)
    roles = role_names()
    destinations = simulation_destinations()
    form = SimulatorForm(request.POST or None, roles=roles, destinations=destinations)
    result = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            source = {"classification": data["classification"]} if data["classification"] else {}
            policy_document = None
            if data["policy"] == "draft":
                draft = policy_draft_get(actor=request.user)
                policy_document = draft.document if draft else None
            result = simulate(
                actor=request.user,
                parts=[PromptPart(kind=data["kind"], text=data["text"], source=source)],
                role=data["role"],
                destination=form.chosen_destination(),
                policy_document=policy_document,
                sensitive=data["sensitive"],
            )
        else:
            status = 400
    template = "governance/simulator.html#simulation-result" if request.htmx and result else "governance/simulator.html"
    return render(request, template, {"form": form, "result": result}, status=status)
