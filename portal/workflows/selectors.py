"""Reads of workflows, runs and approvals; permission scoping in the query (guardian for who may run what)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from portal.core.access import not_visible
from portal.workflows.models import Notification, Run, Status, StepRun, Workflow, WorkflowVersion

UserLike = User | AnonymousUser
RUN_PERMISSION = "workflows.run_workflow"
MANAGE_PERMISSION = "workflows.change_workflow"
ERROR_NOT_MANAGER = "Only administrators edit workflows."
ERROR_NO_RUN = "You may not run this workflow."
ERROR_NOT_FOUND = "No such workflow."
ERROR_RUN_NOT_FOUND = "No such run."
ERROR_STEP_NOT_FOUND = "No such approval."


def is_manager(user: UserLike) -> bool:
    return bool(user.is_authenticated and user.has_perm(MANAGE_PERMISSION))


def require_manager(user: UserLike) -> None:
    if not is_manager(user):
        raise PermissionDenied(ERROR_NOT_MANAGER)


def runnable_workflows(*, user: UserLike) -> QuerySet[Workflow]:
    if not user.is_authenticated:
        return Workflow.objects.none()
    return get_objects_for_user(user, RUN_PERMISSION, klass=Workflow, accept_global_perms=False)


def roles_allowed_to_run(*, workflow: Workflow) -> list[Group]:
    from guardian.shortcuts import get_groups_with_perms

    groups: Any = get_groups_with_perms(workflow)
    return list(groups)


def may_run(user: UserLike, workflow: Workflow) -> bool:
    return runnable_workflows(user=user).filter(pk=workflow.pk).exists()


def require_run_permission(user: UserLike, workflow: Workflow) -> None:
    if not may_run(user, workflow):
        raise PermissionDenied(ERROR_NO_RUN)


def workflows_for_user(*, user: UserLike) -> QuerySet[Workflow]:
    """Managers see every workflow; others the ones they may run."""
    if is_manager(user):
        return Workflow.objects.select_related("current").order_by("name")
    return runnable_workflows(user=user).select_related("current").order_by("name")


def workflow_get(*, user: UserLike, workflow_id: int) -> Workflow:
    workflow = workflows_for_user(user=user).filter(pk=workflow_id).first()
    if workflow is None:
        raise not_visible(Workflow, workflow_id, ERROR_NOT_FOUND)
    return workflow


def workflow_versions(*, workflow: Workflow) -> QuerySet[WorkflowVersion]:
    return workflow.versions.select_related("author", "restored_from").order_by("-number")


def version_get(*, user: UserLike, workflow: Workflow, number: int) -> WorkflowVersion:
    version = workflow_versions(workflow=workflow).filter(number=number).first()
    if version is None:
        raise not_visible(WorkflowVersion, number, "No such version.")
    return version


def _approver_filter(user: UserLike) -> Q:
    return Q(approver_user_id=user.pk) | Q(approver_role__in=user.groups.all())


def runs_for_user(*, user: UserLike) -> QuerySet[Run]:
    """Runs the user owns, runs they are asked to approve, and every run for managers."""
    runs = Run.objects.select_related("workflow", "version", "owner")
    if is_manager(user):
        return runs
    if not user.is_authenticated:
        return Run.objects.none()
    approving = StepRun.objects.filter(_approver_filter(user)).values("run_id")
    return runs.filter(Q(owner_id=user.pk) | Q(pk__in=approving))


def run_get(*, user: UserLike, run_id: int) -> Run:
    run = runs_for_user(user=user).filter(pk=run_id).first()
    if run is None:
        raise not_visible(Run, run_id, ERROR_RUN_NOT_FOUND)
    return run


def run_steps(*, run: Run) -> QuerySet[StepRun]:
    return run.steps.select_related("approver_role", "approver_user", "decided_by").order_by("position")


def may_decide(user: UserLike, step_run: StepRun) -> bool:
    if not user.is_authenticated:
        return False
    if step_run.approver_user_id is not None:
        return step_run.approver_user_id == user.pk
    return step_run.approver_role_id is not None and user.groups.filter(pk=step_run.approver_role_id).exists()


def approvals_for_user(*, user: UserLike) -> QuerySet[StepRun]:
    if not user.is_authenticated:
        return StepRun.objects.none()
    return (
        StepRun.objects.filter(status=Status.WAITING)
        .filter(_approver_filter(user))
        .select_related("run__workflow", "run__owner", "approver_role", "approver_user")
        .order_by("deadline")
    )


def approval_get(*, user: UserLike, step_run_id: int) -> StepRun:
    step_run = (
        StepRun.objects.filter(pk=step_run_id, kind="approval")
        .filter(_approver_filter(user) if user.is_authenticated else Q(pk=None))
        .select_related("run__workflow", "run__owner", "approver_role", "approver_user")
        .first()
    )
    if step_run is None:
        raise not_visible(StepRun, step_run_id, ERROR_STEP_NOT_FOUND)
    return step_run


def notifications_for_user(*, user: UserLike, limit: int = 50) -> QuerySet[Notification]:
    if not user.is_authenticated:
        return Notification.objects.none()
    return Notification.objects.filter(user_id=user.pk).order_by("-created_at")[:limit]
