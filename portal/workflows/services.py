"""Changing workflows and runs: publish, restore, import, grants, start, cancel, approve, the sweeps. Each change is
audited in its own transaction; audit details carry ids, counts, names of fields and hashes, never run values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_groups_with_perms, get_users_with_perms, remove_perm

from audit.services import audit
from portal.core import jobs
from portal.workflows import engine
from portal.workflows.definition import (
    Definition,
    DefinitionError,
    DefinitionInvalid,
    EventTrigger,
    ScheduleTrigger,
    definition_document,
    definition_parse,
    walk,
)
from portal.workflows.models import Run, Schedule, Status, StepRun, Workflow, WorkflowVersion
from portal.workflows.program import initial_state, program_for, render
from portal.workflows.schedule import next_fire
from portal.workflows.selectors import (
    MANAGE_PERMISSION,
    RUN_PERMISSION,
    may_decide,
    require_manager,
    require_run_permission,
)
from portal.workflows.yaml_io import definition_from_yaml

UserLike = User | AnonymousUser
ERROR_REASON_REQUIRED = "Say why this change is made; the reason is kept with the version."
ERROR_NOTHING_CHANGED = "This publication would change nothing: the definition equals the current version."
ERROR_NAME_TAKEN = "Another workflow is already called {name!r}."
ERROR_NOT_RUNNABLE = "This workflow is disabled or has no published version."
ERROR_INPUT_REQUIRED = "The input {name!r} is required."
ERROR_INPUT_TYPE = "The input {name!r} must be {kind}."
ERROR_INPUT_NOT_VISIBLE = "The input {name!r} names a {kind} the run's owner may not see."
ERROR_NOT_WAITING = "This step is not waiting for a decision."
ERROR_NOT_APPROVER = "You are not an approver of this step."
ERROR_ALREADY_FINISHED = "This run has already finished."
ERROR_NO_CANCEL = "Only the run's owner or an administrator of workflows may cancel it."
ERROR_UNKNOWN_ROLE = "There is no role called {name!r}."
ERROR_UNKNOWN_USER = "There is no active user called {name!r}."
ERROR_UNKNOWN_PROFILE = "There is no assistant profile called {name!r}."
ERROR_UNKNOWN_BASE = "There is no knowledge base called {name!r}."


def _sha256(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---- definitions -----------------------------------------------------------------------------------------
def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Leaves of a definition keyed by a readable path: steps are named by id, not position."""
    rows: dict[str, str] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            rows.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and value and all(isinstance(item, dict) and "id" in item for item in value):
        for index, item in enumerate(value):
            rows[f"{prefix}[{item['id']}].position"] = str(index + 1)
            rows.update(_flatten({k: v for k, v in item.items() if k != "id"}, f"{prefix}[{item['id']}]"))
    elif isinstance(value, list) and value and all(isinstance(item, dict) and "name" in item for item in value):
        for item in value:
            rows.update(_flatten({k: v for k, v in item.items() if k != "name"}, f"{prefix}[{item['name']}]"))
    else:
        rows[prefix] = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return rows


def definition_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, str]]:
    """What changed, one readable row per field: {"field", "before", "after"}."""
    old, new = _flatten(before or {}), _flatten(after)
    return [
        {"field": key, "before": old.get(key, "(none)"), "after": new.get(key, "(removed)")}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _check_references(definition: Definition) -> None:
    """Names a definition uses must exist in this portal (checked at publication, with step and field)."""
    from knowledge.selectors import knowledge_base_names
    from portal.assistant.selectors import profile_names

    errors: list[DefinitionError] = []
    roles = set(Group.objects.values_list("name", flat=True))
    bases = knowledge_base_names()
    profiles = profile_names()

    def user_exists(name: str) -> bool:
        return User.objects.filter(username=name, is_active=True).exists()

    for step, path, _ in walk(definition.steps):
        checks: list[tuple[str, bool, str]] = []
        if step.kind == "approval":
            if step.approver.role:
                checks.append(
                    ("approver.role", step.approver.role in roles, ERROR_UNKNOWN_ROLE.format(name=step.approver.role))
                )
            if step.approver.user:
                checks.append(
                    (
                        "approver.user",
                        user_exists(step.approver.user),
                        ERROR_UNKNOWN_USER.format(name=step.approver.user),
                    )
                )
        if step.kind == "notify":
            if step.to.role:
                checks.append(("to.role", step.to.role in roles, ERROR_UNKNOWN_ROLE.format(name=step.to.role)))
            if step.to.user:
                checks.append(("to.user", user_exists(step.to.user), ERROR_UNKNOWN_USER.format(name=step.to.user)))
        if step.kind == "ask" and step.profile:
            checks.append(("profile", step.profile in profiles, ERROR_UNKNOWN_PROFILE.format(name=step.profile)))
        if step.kind == "search":
            for name in step.knowledge_bases:
                checks.append(("knowledge_bases", name in bases, ERROR_UNKNOWN_BASE.format(name=name)))
        if step.kind == "for_each" and step.over.documents is not None:
            name = step.over.documents.knowledge_base
            checks.append(("over.documents.knowledge_base", name in bases, ERROR_UNKNOWN_BASE.format(name=name)))
        for field, ok, message in checks:
            if not ok:
                errors.append(DefinitionError((*path, *field.split(".")), step.id, field, message))
    for index, trigger in enumerate(definition.triggers):
        if isinstance(trigger, ScheduleTrigger | EventTrigger) and not user_exists(trigger.run_as):
            errors.append(
                DefinitionError(
                    ("triggers", index, "run_as"),
                    "",
                    f"triggers.{index}.run_as",
                    ERROR_UNKNOWN_USER.format(name=trigger.run_as),
                )
            )
    if errors:
        raise DefinitionInvalid(errors)


@transaction.atomic
def workflow_publish(
    *,
    actor: UserLike | None,
    document: dict[str, Any],
    reason: str,
    source: str = "editor",
    restored_from: WorkflowVersion | None = None,
    workflow: Workflow | None = None,
) -> WorkflowVersion:
    """Check `document` and publish it as the next immutable version of the workflow it names (created when new).

    With `workflow`, the document may rename that workflow; without, the name picks the workflow (import updates
    the named workflow instead of duplicating it). Nothing is published when any check fails.
    """
    if actor is not None:
        require_manager(actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError(ERROR_REASON_REQUIRED)
    definition = definition_parse(document)
    _check_references(definition)
    canonical = definition_document(definition)
    if workflow is None:
        workflow = Workflow.objects.select_for_update().filter(name=definition.name).first()
    else:
        workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        if Workflow.objects.filter(name=definition.name).exclude(pk=workflow.pk).exists():
            raise DefinitionInvalid(
                [DefinitionError(("name",), "", "name", ERROR_NAME_TAKEN.format(name=definition.name))]
            )
    created = workflow is None
    if workflow is None:
        workflow = Workflow(name=definition.name, created_by=actor if isinstance(actor, User) else None)
    previous = workflow.versions.order_by("-number").first() if not created else None
    diff = definition_diff(previous.definition if previous else None, canonical)
    if previous is not None and not diff:
        raise ValidationError(ERROR_NOTHING_CHANGED)
    workflow.name = definition.name
    workflow.description = definition.description[:500]
    workflow.full_clean(exclude=["current"])
    workflow.save()
    version = WorkflowVersion(
        workflow=workflow,
        number=(previous.number + 1) if previous else 1,
        definition=canonical,
        author=actor if isinstance(actor, User) else None,
        reason=reason,
        restored_from=restored_from,
        source=source,
        diff=diff,
    )
    version.full_clean()
    version.save()
    workflow.current = version
    workflow.save(update_fields=["current"])
    _schedules_sync(workflow, version, definition)
    audit(
        actor=actor,
        actor_username="" if actor is not None else engine.SYSTEM,
        action="workflows.workflow_restored" if restored_from else "workflows.workflow_published",
        target=workflow,
        details={
            "version": version.number,
            "previous_version": previous.number if previous else None,
            "restored_from_version": restored_from.number if restored_from else None,
            "source": source,
            "created": created,
            "reason_chars": len(reason),
            "changed_fields": [row["field"] for row in diff][:200],
            "definition_sha256": _sha256(canonical),
        },
    )
    return version


def workflow_restore(*, actor: UserLike, version: WorkflowVersion, reason: str) -> WorkflowVersion:
    """Bring an earlier version back by publishing a copy of it (history is never rewritten)."""
    return workflow_publish(
        actor=actor,
        document=version.definition,
        reason=reason,
        source="restore",
        restored_from=version,
        workflow=version.workflow,
    )


def workflow_import(*, actor: UserLike, text: str, reason: str) -> WorkflowVersion:
    """Publish YAML as a new version of the workflow it names (or a new workflow); errors carry their line."""
    require_manager(actor)
    _, document = definition_from_yaml(text)
    return workflow_publish(actor=actor, document=document, reason=reason, source="import")


@transaction.atomic
def workflow_set_enabled(*, actor: UserLike, workflow: Workflow, enabled: bool) -> None:
    require_manager(actor)
    workflow.enabled = enabled
    workflow.save(update_fields=["enabled"])
    audit(actor=actor, action="workflows.workflow_changed", target=workflow, details={"enabled": enabled})


@transaction.atomic
def workflow_grant(
    *, actor: UserLike | None, workflow: Workflow, users: list[User] | None = None, roles: list[Group] | None = None
) -> None:
    """Set exactly who may run the workflow (guardian object permission to users and roles); `actor=None` is the
    system (the demo setup)."""
    if actor is not None:
        require_manager(actor)
    granted_users: Any = get_users_with_perms(workflow, only_with_perms_in=["run_workflow"], with_group_users=False)
    granted_roles: Any = get_groups_with_perms(workflow)
    before_users = sorted(user.pk for user in granted_users)
    before_roles = sorted(group.name for group in granted_roles)
    for user in list(granted_users):
        remove_perm(RUN_PERMISSION, user, workflow)
    for group in list(granted_roles):
        remove_perm(RUN_PERMISSION, group, workflow)
    for user in users or []:
        assign_perm(RUN_PERMISSION, user, workflow)
    for group in roles or []:
        assign_perm(RUN_PERMISSION, group, workflow)
    audit(
        actor=actor,
        actor_username="" if actor is not None else engine.SYSTEM,
        action="workflows.workflow_access_changed",
        target=workflow,
        details={
            "users_before": before_users,
            "users_after": sorted(user.pk for user in users or []),
            "roles_before": before_roles,
            "roles_after": sorted(group.name for group in roles or []),
        },
    )


def _schedules_sync(workflow: Workflow, version: WorkflowVersion, definition: Definition) -> None:
    Schedule.objects.filter(workflow=workflow).delete()
    now = timezone.now()
    for index, trigger in enumerate(definition.triggers):
        if isinstance(trigger, ScheduleTrigger):
            Schedule.objects.create(
                workflow=workflow,
                version=version,
                trigger_index=index,
                cron=trigger.cron,
                timezone=trigger.timezone,
                next_at=next_fire(trigger.cron, trigger.timezone, now),
            )


# ---- runs ---------------------------------------------------------------------------------------------
def _coerce_inputs(definition: Definition, raw: dict[str, Any], owner: User) -> dict[str, Any]:
    from knowledge.selectors import documents_for_user, knowledge_bases_for_user
    from portal.customers.selectors import customers_visible_to

    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in definition.inputs:
        value = raw.get(spec.name)
        if value in (None, ""):
            value = spec.default
        if value in (None, ""):
            if spec.required:
                errors[spec.name] = ERROR_INPUT_REQUIRED.format(name=spec.name)
            continue
        try:
            if spec.type == "number":
                number = float(value)
                values[spec.name] = int(number) if number.is_integer() else number
            elif spec.type == "date":
                values[spec.name] = dt.date.fromisoformat(str(value)).isoformat()
            elif spec.type in ("customer", "document", "knowledge_base"):
                object_id = int(value)
                visible: QuerySet[Any]
                if spec.type == "customer":
                    visible = customers_visible_to(user=owner)
                elif spec.type == "document":
                    visible = documents_for_user(user=owner)
                else:
                    visible = knowledge_bases_for_user(user=owner)
                if not visible.filter(pk=object_id).exists():
                    errors[spec.name] = ERROR_INPUT_NOT_VISIBLE.format(name=spec.name, kind=spec.type.replace("_", " "))
                    continue
                values[spec.name] = object_id
            else:
                values[spec.name] = str(value)[:5000]
        except (TypeError, ValueError):
            kinds = {"number": "a number", "date": "a date (YYYY-MM-DD)"}
            errors[spec.name] = ERROR_INPUT_TYPE.format(name=spec.name, kind=kinds.get(spec.type, "an id"))
    if errors:
        raise ValidationError(errors)
    return values


@transaction.atomic
def run_start(
    *,
    actor: UserLike | None,
    workflow: Workflow,
    inputs: dict[str, Any],
    trigger: str = "manual",
    owner: User | None = None,
) -> Run:
    """Start a run of the current version. By hand the actor needs the workflow's run permission and owns the run;
    a schedule or an event starts it as the trigger's `run_as` user, who needs it too."""
    run_owner = owner if owner is not None else actor
    assert isinstance(run_owner, User)
    require_run_permission(run_owner, workflow)
    workflow = Workflow.objects.select_related("current").get(pk=workflow.pk)
    if not workflow.enabled or workflow.current is None:
        raise ValidationError(ERROR_NOT_RUNNABLE)
    definition, program = program_for(workflow.current_id, workflow.current.definition)  # type: ignore[arg-type]
    run = Run(
        workflow=workflow,
        version=workflow.current,
        owner=run_owner,
        trigger=trigger,
        inputs=_coerce_inputs(definition, inputs, run_owner),
        state=initial_state(),
    )
    run.full_clean()
    run.save()
    audit(
        actor=actor,
        actor_username="" if actor is not None else engine.SYSTEM,
        action="workflows.run_started",
        target=run,
        details={
            "workflow_id": workflow.pk,
            "version": workflow.current.number,
            "trigger": trigger,
            "owner_id": run_owner.pk,
            "inputs": sorted(run.inputs),
        },
    )
    engine.queue_advance(run, program)
    return run


@transaction.atomic
def run_cancel(*, actor: UserLike, run: Run) -> Run:
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.owner_id != actor.pk and not actor.has_perm(MANAGE_PERMISSION):
        raise PermissionDenied(ERROR_NO_CANCEL)
    if run.finished:
        raise ValidationError(ERROR_ALREADY_FINISHED)
    stopped = StepRun.objects.filter(run=run, status__in=[Status.PENDING, Status.RUNNING, Status.WAITING]).update(
        status=Status.CANCELLED, finished_at=timezone.now()
    )
    run.status = Status.CANCELLED
    run.finished_at = timezone.now()
    run.seq += 1  # every message already queued for this run now does nothing
    run.save(update_fields=["status", "finished_at", "seq"])
    audit(actor=actor, action="workflows.run_cancelled", target=run, details={"steps_stopped": stopped})
    return run


@transaction.atomic
def approval_decide(
    *, actor: UserLike | None, step_run: StepRun, approve: bool, note: str = "", expired: bool = False
) -> StepRun:
    """Record an approver's decision (or the deadline's) and move the run on as the step says."""
    run = (
        Run.objects.select_for_update(of=("self",))
        .select_related("owner", "version", "workflow")
        .get(pk=step_run.run_id)
    )
    step_run = StepRun.objects.select_for_update().get(pk=step_run.pk)
    if step_run.status != Status.WAITING or run.status != Status.WAITING:
        raise ValidationError(ERROR_NOT_WAITING)
    if actor is not None and not may_decide(actor, step_run):
        raise PermissionDenied(ERROR_NOT_APPROVER)
    definition, program = program_for(run.version_id, run.version.definition)
    instruction = program.instructions[run.state["pc"]]
    step = instruction.step
    assert step is not None and step.kind == "approval"
    decision = (
        ("approved" if approve else "rejected") if not expired else f"expired ({'approved' if approve else 'rejected'})"
    )
    step_run.status = Status.DONE
    step_run.output = {
        "decision": decision,
        "approved": approve,
        "by": actor.get_username() if actor else engine.SYSTEM,
        "note": note[:1000],
    }
    step_run.decided_by = actor if isinstance(actor, User) else None
    step_run.decided_at = step_run.finished_at = timezone.now()
    step_run.save()
    run.state["vars"]["steps"][step.id] = step_run.output
    run.status = Status.RUNNING
    audit(
        actor=actor,
        actor_username="" if actor is not None else engine.SYSTEM,
        action="workflows.approval_decided",
        target=step_run,
        outcome="success" if approve else "denied",
        details={
            "run_id": run.pk,
            "step": step_run.key,
            "approved": approve,
            "expired": expired,
            "note_chars": len(note),
        },
    )
    if approve or step.on_reject == "continue":
        run.state["pc"] += 1
    elif step.on_reject == "skip_item" and run.state["frames"]:
        run.state["pc"] = program.next_of_loop[run.state["frames"][-1]["loop"]]
    else:
        run.status = Status.CANCELLED
        run.error = f"Step {step_run.key!r} was not approved ({decision})."
        run.finished_at = timezone.now()
    run.seq += 1
    run.heartbeat_at = timezone.now()
    run.save(update_fields=["state", "status", "error", "finished_at", "seq", "heartbeat_at"])
    if run.status == Status.RUNNING:
        engine.queue_advance(run, program)
    else:
        audit(
            actor=None,
            actor_username=engine.SYSTEM,
            action="workflows.run_finished",
            target=run,
            outcome="failure",
            details={"status": run.status, "rejected_step": step_run.key},
        )
    return step_run


def approvals_expire(*, now: dt.datetime | None = None) -> list[int]:
    """Periodic: decide every approval whose deadline passed, as its step says (reject, approve or fail)."""
    now = now or timezone.now()
    decided = []
    for step_run in StepRun.objects.filter(status=Status.WAITING, deadline__lt=now).select_related("run__version"):
        _, program = program_for(step_run.run.version_id, step_run.run.version.definition)
        step = program.instructions[step_run.run.state["pc"]].step
        on_expiry = getattr(step, "on_expiry", "reject")
        try:
            if on_expiry == "fail":
                _approval_fail(step_run)
            else:
                approval_decide(actor=None, step_run=step_run, approve=on_expiry == "approve", expired=True)
        except ValidationError:
            continue  # decided meanwhile
        decided.append(step_run.pk)
    return decided


@transaction.atomic
def _approval_fail(step_run: StepRun) -> None:
    run = Run.objects.select_for_update().get(pk=step_run.run_id)
    step_run = StepRun.objects.select_for_update().get(pk=step_run.pk)
    if step_run.status != Status.WAITING:
        raise ValidationError(ERROR_NOT_WAITING)
    step_run.status = Status.FAILED
    step_run.error = "No decision before the deadline."
    step_run.finished_at = timezone.now()
    step_run.save()
    _run_fail(run, f"Approval {step_run.key!r} expired.", finished_at=timezone.now())
    audit(actor=None, actor_username=engine.SYSTEM, target=step_run, action="workflows.step_failed",
          outcome="failure", details={"run_id": run.pk, "step": step_run.key, "expired": True})  # fmt: skip


def _run_fail(run: Run, error: str, *, finished_at: dt.datetime) -> None:
    """The run ends failed; the new seq makes every message already queued for it do nothing."""
    run.status, run.error, run.finished_at = Status.FAILED, error, finished_at
    run.seq += 1
    run.save(update_fields=["status", "error", "finished_at", "seq"])


@transaction.atomic
def runs_requeue_stalled(*, now: dt.datetime | None = None) -> list[int]:
    """Periodic (beat): queue again the running runs whose worker died (heartbeat older than the lease). The new
    attempt takes over the step (engine.claim); after JOBS_MAX_REQUEUES the run fails instead."""
    now = now or timezone.now()
    stale = jobs.stale_before(now)
    requeued = []
    for run in Run.objects.select_for_update(skip_locked=True).filter(status=Status.RUNNING, heartbeat_at__lt=stale):
        if run.requeues >= jobs.max_requeues():
            _run_fail(run, jobs.ERROR_INTERRUPTED.format(count=run.requeues), finished_at=now)
            audit(actor=None, actor_username=engine.SYSTEM, target=run, action="workflows.run_finished",
                  outcome="failure", details={"status": Status.FAILED, "requeues": run.requeues})  # fmt: skip
            continue
        run.requeues += 1
        run.heartbeat_at = now
        run.save(update_fields=["requeues", "heartbeat_at"])
        audit(
            actor=None,
            actor_username=engine.SYSTEM,
            target=run,
            action="workflows.run_requeued",
            details={"seq": run.seq, "requeues": run.requeues},
        )
        _, program = program_for(run.version_id, run.version.definition)
        engine.queue_advance(run, program)
        requeued.append(run.pk)
    return requeued


# ---- triggers -----------------------------------------------------------------------------------------
def schedules_fire(*, now: dt.datetime | None = None) -> list[int]:
    """Periodic (beat, every minute): start a run for each schedule that is due, once per due time."""
    now = now or timezone.now()
    started: list[int] = []
    while True:
        with transaction.atomic():
            schedule = (
                Schedule.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("workflow", "version")
                .filter(next_at__lte=now)
                .order_by("next_at")
                .first()
            )
            if schedule is None:
                return started
            definition, _ = program_for(schedule.version_id, schedule.version.definition)
            trigger = definition.triggers[schedule.trigger_index]
            assert isinstance(trigger, ScheduleTrigger)
            schedule.last_at = schedule.next_at
            schedule.next_at = next_fire(schedule.cron, schedule.timezone, now)
            schedule.save(update_fields=["last_at", "next_at"])
            owner = User.objects.filter(username=trigger.run_as, is_active=True).first()
            try:
                with transaction.atomic():
                    if owner is None:
                        raise PermissionDenied(ERROR_UNKNOWN_USER.format(name=trigger.run_as))
                    run = run_start(
                        actor=None,
                        workflow=schedule.workflow,
                        inputs=dict(trigger.inputs),
                        trigger="schedule",
                        owner=owner,
                    )
                started.append(run.pk)
            except (PermissionDenied, ValidationError) as error:
                audit(
                    actor=None,
                    actor_username=engine.SYSTEM,
                    action="workflows.trigger_refused",
                    target=schedule.workflow,
                    outcome="denied",
                    details={"trigger": "schedule", "reason": type(error).__name__},
                )


def event_dispatch(*, event: str, payload: dict[str, int]) -> list[int]:
    """Start every enabled workflow whose current version has an event trigger for `event`."""
    started: list[int] = []
    for workflow in Workflow.objects.filter(enabled=True, current__isnull=False).select_related("current"):
        definition, _ = program_for(workflow.current_id, workflow.current.definition)  # type: ignore[arg-type, union-attr]
        for trigger in definition.triggers:
            if not isinstance(trigger, EventTrigger) or trigger.event != event:
                continue
            inputs = {name: render(text, {"event": payload}) for name, text in trigger.inputs.items()}
            owner = User.objects.filter(username=trigger.run_as, is_active=True).first()
            try:
                with transaction.atomic():
                    if owner is None:
                        raise PermissionDenied(ERROR_UNKNOWN_USER.format(name=trigger.run_as))
                    run = run_start(actor=None, workflow=workflow, inputs=inputs, trigger="event", owner=owner)
                started.append(run.pk)
            except (PermissionDenied, ValidationError) as error:
                with transaction.atomic():
                    audit(
                        actor=None,
                        actor_username=engine.SYSTEM,
                        action="workflows.trigger_refused",
                        target=workflow,
                        outcome="denied",
                        details={"trigger": "event", "event": event, "reason": type(error).__name__},
                    )
    return started


@transaction.atomic
def notifications_mark_read(*, actor: UserLike) -> int:
    from portal.workflows.models import Notification

    if not isinstance(actor, User):
        return 0
    count = Notification.objects.filter(user=actor, read_at__isnull=True).update(read_at=timezone.now())
    if count:
        audit(
            actor=actor,
            action="workflows.notifications_read",
            object_type="workflows.notification",
            details={"count": count},
        )
    return count
