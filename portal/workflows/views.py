"""Workflow screens: list, editor (YAML), versions with diffs, run form, the live run page, approvals inbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.core.types import PortalRequest
from portal.workflows import selectors, services
from portal.workflows.definition import DefinitionInvalid
from portal.workflows.forms import DecisionForm, DefinitionForm, GrantForm, RestoreForm, RunForm
from portal.workflows.models import WorkflowVersion
from portal.workflows.program import program_for
from portal.workflows.yaml_io import definition_to_yaml

NEW_WORKFLOW_YAML = """name: My workflow
description: What it does and why.
inputs:
  - name: topic
    type: text
steps:
  - id: search
    kind: search
    query: "{{ inputs.topic }}"
  - id: answer
    kind: ask
    prompt: "Summarise what the passages say about {{ inputs.topic }}."
    context: [search]
triggers:
  - kind: manual
"""


def _errors(error: DefinitionInvalid | ValidationError) -> list[str]:
    if isinstance(error, DefinitionInvalid):
        return [str(item) for item in error.errors]
    return list(error.messages)


@login_required
@require_GET
def workflow_list_view(request: PortalRequest) -> HttpResponse:
    workflows = selectors.workflows_for_user(user=request.user)
    context = {
        "workflows": workflows,
        "is_manager": selectors.is_manager(request.user),
        "runs": selectors.runs_for_user(user=request.user)[:20],
        "approvals": selectors.approvals_for_user(user=request.user).count(),
        "notifications": selectors.notifications_for_user(user=request.user, limit=10),
    }
    return render(request, "workflows/workflow_list.html", context)


@login_required
@require_GET
def workflow_detail_view(request: PortalRequest, workflow_id: int) -> HttpResponse:
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
    run_form = None
    if workflow.current is not None and selectors.may_run(request.user, workflow):
        definition, _ = program_for(workflow.current.pk, workflow.current.definition)
        run_form = RunForm(definition=definition)
    context = {
        "workflow": workflow,
        "versions": selectors.workflow_versions(workflow=workflow),
        "run_form": run_form,
        "is_manager": selectors.is_manager(request.user),
        "yaml_text": definition_to_yaml(workflow.current.definition) if workflow.current else "",
        "grant_form": GrantForm(initial={"roles": selectors.roles_allowed_to_run(workflow=workflow)}),
    }
    return render(request, "workflows/workflow_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def workflow_edit_view(request: PortalRequest, workflow_id: int | None = None) -> HttpResponse:
    selectors.require_manager(request.user)
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id) if workflow_id else None
    initial = definition_to_yaml(workflow.current.definition) if workflow and workflow.current else NEW_WORKFLOW_YAML
    form = DefinitionForm(request.POST or None, initial={"yaml_text": initial})

    def publish() -> WorkflowVersion:
        from portal.workflows.yaml_io import definition_from_yaml

        _, document = definition_from_yaml(form.cleaned_data["yaml_text"])
        return services.workflow_publish(
            actor=request.user, document=document, reason=form.cleaned_data["reason"], workflow=workflow
        )

    return _definition_page(
        request,
        form,
        publish=publish,
        announce=lambda version: f"Published version {version.number}.",
        context={"workflow": workflow},
    )


@login_required
@require_http_methods(["GET", "POST"])
def workflow_import_view(request: PortalRequest) -> HttpResponse:
    selectors.require_manager(request.user)
    form = DefinitionForm(request.POST or None)

    def publish() -> WorkflowVersion:
        return services.workflow_import(
            actor=request.user, text=form.cleaned_data["yaml_text"], reason=form.cleaned_data["reason"]
        )

    return _definition_page(
        request,
        form,
        publish=publish,
        announce=lambda version: f"Imported as version {version.number} of {version.workflow.name}.",
        context={"importing": True},
    )


def _definition_page(
    request: PortalRequest,
    form: DefinitionForm,
    *,
    publish: Callable[[], WorkflowVersion],
    announce: Callable[[WorkflowVersion], str],
    context: dict[str, Any],
) -> HttpResponse:
    """Edit and import share this: a valid POST publishes; what the definition or the service refuses is listed."""
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            version = publish()
        except (DefinitionInvalid, ValidationError) as error:
            errors = _errors(error)
        else:
            messages.success(request, announce(version))
            return redirect("workflows:workflow_detail", workflow_id=version.workflow_id)
    status = 400 if errors or (request.method == "POST" and not form.is_valid()) else 200
    page = {"form": form, "errors": errors, **context}
    return render(request, "workflows/workflow_edit.html", page, status=status)


@login_required
@require_POST
def workflow_access_view(request: PortalRequest, workflow_id: int) -> HttpResponse:
    selectors.require_manager(request.user)
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
    form = GrantForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Choose roles from the list.", status=400)
    services.workflow_grant(actor=request.user, workflow=workflow, roles=list(form.cleaned_data["roles"]))
    messages.success(request, "Who may run this workflow is saved.")
    return redirect("workflows:workflow_detail", workflow_id=workflow.pk)


@login_required
@require_GET
def workflow_export_view(request: PortalRequest, workflow_id: int) -> HttpResponse:
    selectors.require_manager(request.user)
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
    if workflow.current is None:
        raise PermissionDenied("Nothing is published yet.")
    response = HttpResponse(definition_to_yaml(workflow.current.definition), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="workflow-{workflow.pk}-v{workflow.current.number}.yaml"'
    return response


@login_required
@require_GET
def version_detail_view(request: PortalRequest, workflow_id: int, number: int) -> HttpResponse:
    selectors.require_manager(request.user)
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
    version = selectors.version_get(user=request.user, workflow=workflow, number=number)
    context = {
        "workflow": workflow,
        "version": version,
        "yaml_text": definition_to_yaml(version.definition),
        "restore_form": RestoreForm(),
    }
    return render(request, "workflows/version_detail.html", context)


@login_required
@require_POST
def version_restore_view(request: PortalRequest, workflow_id: int, number: int) -> HttpResponse:
    selectors.require_manager(request.user)
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
    version = selectors.version_get(user=request.user, workflow=workflow, number=number)
    form = RestoreForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Say why you restore this version.", status=400)
    try:
        restored = services.workflow_restore(actor=request.user, version=version, reason=form.cleaned_data["reason"])
    except (DefinitionInvalid, ValidationError) as error:
        messages.error(request, " ".join(_errors(error)))
        return redirect("workflows:version_detail", workflow_id=workflow.pk, number=number)
    messages.success(request, f"Version {number} restored as version {restored.number}.")
    return redirect("workflows:workflow_detail", workflow_id=workflow.pk)


@login_required
@require_POST
def run_start_view(request: PortalRequest, workflow_id: int) -> HttpResponse:
    workflow = selectors.workflow_get(user=request.user, workflow_id=workflow_id)
    selectors.require_run_permission(request.user, workflow)
    if workflow.current is None:
        raise PermissionDenied("Nothing is published yet.")
    definition, _ = program_for(workflow.current.pk, workflow.current.definition)
    form = RunForm(request.POST, definition=definition)
    if form.is_valid():
        inputs = {
            name: (value.isoformat() if hasattr(value, "isoformat") else value)
            for name, value in form.cleaned_data.items()
        }
        try:
            run = services.run_start(actor=request.user, workflow=workflow, inputs=inputs)
        except ValidationError as error:
            for field, problems in getattr(error, "error_dict", {None: error.error_list}).items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            return redirect("workflows:run_detail", run_id=run.pk)
    context = {
        "workflow": workflow,
        "versions": selectors.workflow_versions(workflow=workflow),
        "run_form": form,
        "is_manager": selectors.is_manager(request.user),
    }
    return render(request, "workflows/workflow_detail.html", context, status=400)


@login_required
@require_GET
def run_detail_view(request: PortalRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    context: dict[str, Any] = {
        "run": run,
        "steps": selectors.run_steps(run=run),
        "may_cancel": not run.finished and (run.owner_id == request.user.pk or selectors.is_manager(request.user)),
    }
    template = "workflows/run_detail.html#run-steps" if request.htmx else "workflows/run_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def run_cancel_view(request: PortalRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(user=request.user, run_id=run_id)
    try:
        services.run_cancel(actor=request.user, run=run)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("workflows:run_detail", run_id=run.pk)


@login_required
@require_GET
def approvals_view(request: PortalRequest) -> HttpResponse:
    return render(request, "workflows/approvals.html", {"approvals": selectors.approvals_for_user(user=request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def approval_detail_view(request: PortalRequest, step_run_id: int) -> HttpResponse:
    step_run = selectors.approval_get(user=request.user, step_run_id=step_run_id)
    form = DecisionForm(request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "workflows/approval_detail.html", {"step": step_run, "form": form}, status=400)
        try:
            services.approval_decide(
                actor=request.user,
                step_run=step_run,
                approve=form.cleaned_data["decision"] == "approve",
                note=form.cleaned_data["note"],
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Your decision is recorded.")
        return redirect("workflows:run_detail", run_id=step_run.run_id)
    return render(request, "workflows/approval_detail.html", {"step": step_run, "form": form})
