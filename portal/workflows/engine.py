"""Moving a run on by one step: claim (transaction A), execute, complete (transaction B).

Each Celery task `workflows.run_advance(run_id, seq)` does one step. `seq` is the run's advance counter: a task
whose seq is not the run's current one (a duplicate message, one sent before a cancellation) does nothing. The
claim locks the run row, walks the internal instructions (jumps, the next for-each item) and marks the step
running with a new attempt number; completion locks the run again and commits the step's effect, its output, the
new program counter and the next task only if this attempt still owns the step. So after `kill -9` the sweep
queues the same seq again, the new attempt takes the step over (the dead one can never commit), and steps whose
effect is written in the completing transaction (memory, interaction, notify, ...) are never done twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from audit.services import audit
from portal.core import jobs
from portal.workflows.definition import ApprovalStep, ConditionStep, ForEachStep
from portal.workflows.models import Run, Status, StepRun
from portal.workflows.program import (
    Instruction,
    MissingVariable,
    Program,
    compare,
    program_for,
    render,
    resolve,
    step_key,
    variables,
)
from portal.workflows.steps import EXECUTORS, OUTSIDE_TRANSACTION, ItemMissing, StepContext, StepFailed, StepResult

logger = logging.getLogger(__name__)
SYSTEM = "system"
ERROR_STEP_FAILED = "Step {key!r} failed: {error}"
ERROR_TIMED_OUT = "The step took longer than its timeout ({seconds} s)."
ERROR_INTERNAL = "The step stopped on an internal error ({name})."
ITEM_LIST_LIMIT = 10_000

# How the next task is sent; tests and the benchmark drive runs in-process by replacing it.
Enqueue = Callable[[int, int, int, float], None]


def _celery_enqueue(run_id: int, seq: int, timeout: int, countdown: float) -> None:
    from portal.workflows.tasks import run_advance_task

    run_advance_task.apply_async((run_id, seq), countdown=countdown, soft_time_limit=timeout, time_limit=timeout + 30)


enqueue: Enqueue = _celery_enqueue


def queue_advance(run: Run, program: Program, countdown: float = 0) -> None:
    run_id, seq, timeout = run.pk, run.seq, program.timeout_at(int(run.state.get("pc", 0)))
    transaction.on_commit(lambda: enqueue(run_id, seq, timeout, countdown))


@dataclass(frozen=True)
class Claim:
    run_id: int
    seq: int
    step_run_id: int
    attempt: int
    key: str
    instruction: Instruction


def _run_vars(run: Run) -> dict[str, Any]:
    return variables(
        inputs=run.inputs,
        state=run.state,
        run={
            "id": run.pk,
            "owner": run.owner.get_username(),
            "started_at": (run.started_at or run.created_at).isoformat(),
        },
    )


def _locked(run_id: int) -> Run | None:
    return Run.objects.select_for_update(of=("self",)).select_related("owner", "version").filter(pk=run_id).first()


def run_finish(run: Run, status: str, error: str = "") -> None:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    run.seq += 1
    run.save(update_fields=["status", "error", "finished_at", "seq", "state"])
    audit(
        actor=None,
        actor_username=SYSTEM,
        action="workflows.run_finished",
        target=run,
        outcome="success" if status == Status.DONE else "failure",
        details={
            "workflow_id": run.workflow_id,
            "version": run.version.number,
            "status": status,
            "steps": run.steps.count(),
            "cost": str(run.cost),
        },
    )


def _step_internal(run: Run, instruction: Instruction) -> None:
    """Jumps and the end of a for-each item move the program counter without a step of their own."""
    state = run.state
    if instruction.op == "jump":
        state["pc"] = instruction.target
        return
    frame = state["frames"][-1]
    frame["index"] += 1
    loop_var = frame["as"]
    if frame["index"] < len(frame["items"]):
        state["vars"][loop_var] = frame["items"][frame["index"]]
        state["pc"] = instruction.target
    else:
        state["frames"].pop()
        state["vars"].pop(loop_var, None)
        state["pc"] += 1


@transaction.atomic
def claim(run_id: int, seq: int) -> Claim | None:
    run = _locked(run_id)
    if run is None or run.seq != seq or run.status not in (Status.PENDING, Status.RUNNING):
        return None
    _, program = program_for(run.version_id, run.version.definition)
    moved = False
    while 0 <= run.state["pc"] < len(program.instructions) and program.instructions[run.state["pc"]].op in (
        "jump",
        "next",
    ):
        _step_internal(run, program.instructions[run.state["pc"]])
        moved = True
    now = timezone.now()
    if run.status == Status.PENDING:
        run.status, run.started_at = Status.RUNNING, now
    run.heartbeat_at = now
    if run.state["pc"] >= len(program.instructions):
        run_finish(run, Status.DONE)
        return None
    if moved:
        run.save(update_fields=["state", "status", "started_at", "heartbeat_at"])
    instruction = program.instructions[run.state["pc"]]
    step = instruction.step
    assert step is not None
    key = step_key(step.id, run.state["frames"])
    step_run = StepRun.objects.filter(run=run, key=key).first()
    if step_run is None:
        step_run = StepRun(run=run, key=key, step_id=step.id, kind=step.kind, position=run.steps.count())
    elif step_run.status == Status.RUNNING and step_run.heartbeat_at and step_run.heartbeat_at > jobs.stale_before(now):
        return None  # another attempt is alive and owns it
    elif step_run.status not in (Status.PENDING, Status.RUNNING):
        return None  # decided elsewhere (an approval waiting, a step already finished)
    step_run.attempts += 1
    step_run.started_at = step_run.started_at or now
    step_run.heartbeat_at = now
    if isinstance(step, ApprovalStep):
        _approval_open(run, step_run, step, program)
        return None
    step_run.status = Status.RUNNING
    step_run.save()
    run.save(update_fields=["status", "started_at", "heartbeat_at", "state"])
    return Claim(run.pk, seq, step_run.pk, step_run.attempts, key, instruction)


def _approval_open(run: Run, step_run: StepRun, step: ApprovalStep, program: Program) -> None:
    from portal.workflows.steps import preview, recipients

    context = _context(run, step_run)
    following = (
        program.instructions[run.state["pc"] + 1].step if run.state["pc"] + 1 < len(program.instructions) else None
    )
    step_run.status = Status.WAITING
    step_run.approver_role = Group.objects.filter(name=step.approver.role).first() if step.approver.role else None
    step_run.approver_user = User.objects.filter(username=step.approver.user).first() if step.approver.user else None
    step_run.deadline = timezone.now() + dt.timedelta(hours=step.deadline_hours)
    try:
        message = render(step.message, context.variables)
    except MissingVariable as error:
        message = str(error)
    step_run.input = {
        "message": message,
        "next_step": following.id if following else "",
        "preview": preview(following, context) if following else {},
    }
    step_run.save()
    run.status = Status.WAITING
    run.save(update_fields=["status", "started_at", "heartbeat_at", "state"])
    audit(
        actor=None,
        actor_username=SYSTEM,
        action="workflows.approval_requested",
        target=step_run,
        details={
            "run_id": run.pk,
            "step": step_run.key,
            "role": step.approver.role,
            "user_id": step_run.approver_user_id,
            "deadline": step_run.deadline.isoformat(),
        },
    )
    from portal.workflows.models import Notification

    url = f"/workflows/approvals/{step_run.pk}/"
    for person in recipients(role=step.approver.role, user=step.approver.user):
        Notification.objects.get_or_create(
            user=person,
            run=run,
            step_key=step_run.key,
            defaults={"text": f"Approval needed: {run.workflow.name}, step {step_run.key}", "url": url},
        )


def _context(run: Run, step_run: StepRun) -> StepContext:
    return StepContext(
        owner=run.owner, run_id=run.pk, step_run_id=step_run.pk, key=step_run.key, variables=_run_vars(run)
    )


def _control(run: Run, instruction: Instruction, context: StepContext) -> StepResult:
    """Condition and for-each: they decide where the program goes next (applied on completion)."""
    step = instruction.step
    if isinstance(step, ConditionStep):
        try:
            value = resolve(step.if_.var, context.variables)
        except MissingVariable:
            value = None
        result = compare(step.if_.op, value, step.if_.value)
        return StepResult(
            output={"result": result, "branch": "then" if result else "else"},
            input={
                "var": step.if_.var,
                "op": step.if_.op,
                "value": step.if_.value,
                "actual": value if isinstance(value, str | int | float | bool) else str(value)[:200],
            },
        )
    assert isinstance(step, ForEachStep)
    items = _items(step, context)
    return StepResult(
        output={"count": len(items), "items": items}, input={"over": step.over.model_dump(exclude_none=True)}
    )


def _items(step: ForEachStep, context: StepContext) -> list[dict[str, Any]]:
    limit = min(step.limit, ITEM_LIST_LIMIT)
    if step.over.customers is not None:
        from portal.customers.selectors import customers_matching

        spec = step.over.customers
        since = None
        if spec.interacted_within_days:
            since = timezone.now() - dt.timedelta(days=spec.interacted_within_days)
        customers = customers_matching(user=context.owner, tier=spec.tier, search=spec.search, interacted_since=since)
        return [
            {"id": pk, "name": name, "type": "customer"} for pk, name in customers.values_list("pk", "name")[:limit]
        ]
    from knowledge.selectors import documents_for_user, knowledge_bases_for_user

    assert step.over.documents is not None
    base = knowledge_bases_for_user(user=context.owner).filter(name=step.over.documents.knowledge_base).first()
    if base is None:
        raise StepFailed(f"The run's owner may not read the knowledge base {step.over.documents.knowledge_base!r}.")
    documents = documents_for_user(user=context.owner, knowledge_base=base).order_by("pk")
    return [{"id": pk, "name": title, "type": "document"} for pk, title in documents.values_list("pk", "title")[:limit]]


def execute(found: Claim) -> None:
    """Run the claimed step and complete it; every failure becomes the step's error, never a crashed task."""
    started = time.perf_counter()
    result: StepResult | None = None
    failure: StepFailed | None = None
    if found.instruction.step is not None and found.instruction.step.kind in OUTSIDE_TRANSACTION:
        run = Run.objects.select_related("owner").get(pk=found.run_id)
        step_run = StepRun.objects.get(pk=found.step_run_id)
        try:
            result = EXECUTORS[found.instruction.step.kind](found.instruction.step, _context(run, step_run))
        except (StepFailed, MissingVariable) as error:
            failure = error if isinstance(error, StepFailed) else StepFailed(str(error))
        except Exception as error:
            if _timed_out(error):
                failure = StepFailed(ERROR_TIMED_OUT.format(seconds=found.instruction.step.timeout_seconds))
            else:
                logger.exception("workflows: step %s of run %s failed", found.key, found.run_id)
                failure = StepFailed(ERROR_INTERNAL.format(name=type(error).__name__))
    complete(found, result, failure, started)


def _timed_out(error: BaseException) -> bool:
    return type(error).__name__ == "SoftTimeLimitExceeded"


@transaction.atomic
def complete(found: Claim, result: StepResult | None, failure: StepFailed | None, started: float) -> None:
    run = _locked(found.run_id)
    step_run = StepRun.objects.select_for_update().filter(pk=found.step_run_id).first()
    if run is None or step_run is None or run.seq != found.seq or run.status != Status.RUNNING:
        return  # cancelled meanwhile, or another attempt moved on: nothing of this attempt is kept
    if step_run.status != Status.RUNNING or step_run.attempts != found.attempt:
        return  # taken over by a newer attempt after this one looked dead
    _, program = program_for(run.version_id, run.version.definition)
    step = found.instruction.step
    assert step is not None
    if result is None and failure is None:
        context = _context(run, step_run)
        try:
            with transaction.atomic():  # a failing step's partial writes go; its failure is still recorded
                if found.instruction.op in ("branch", "loop"):
                    result = _control(run, found.instruction, context)
                else:
                    result = EXECUTORS[step.kind](step, context)
        except (StepFailed, MissingVariable) as error:
            failure = error if isinstance(error, StepFailed) else StepFailed(str(error))
        except Exception as error:
            if _timed_out(error):
                failure = StepFailed(ERROR_TIMED_OUT.format(seconds=step.timeout_seconds))
            else:
                logger.exception("workflows: step %s of run %s failed", step_run.key, run.pk)
                failure = StepFailed(ERROR_INTERNAL.format(name=type(error).__name__))
    now = timezone.now()
    step_run.finished_at = now
    if result is not None:
        _step_done(run, step_run, found.instruction, result, started)
    else:
        assert failure is not None
        _step_failed(run, step_run, found.instruction, program, failure)
        if step_run.status == Status.PENDING:  # a retry: same seq, later
            run.save(update_fields=["state", "heartbeat_at"])
            queue_advance(run, program, countdown=min(60, 2 * step_run.failures))
            return
    run.seq += 1
    run.heartbeat_at = now
    run.save(update_fields=["state", "seq", "heartbeat_at", "cost", "status", "error", "finished_at", "requeues"])
    if run.status == Status.RUNNING:
        queue_advance(run, program)


def _step_done(run: Run, step_run: StepRun, instruction: Instruction, result: StepResult, started: float) -> None:
    step_run.status = Status.DONE
    step_run.output = result.output
    step_run.input = result.input
    step_run.manifest = result.manifest
    step_run.cost = result.cost
    step_run.model = result.model
    step_run.model_ms = result.model_ms
    step_run.overhead_ms = (time.perf_counter() - started) * 1000 - (result.model_ms or 0)
    step_run.error = ""
    step_run.save()
    run.cost += result.cost or Decimal(0)
    run.requeues = 0  # progress: JOBS_MAX_REQUEUES counts interruptions of one step, not of the whole run
    state = run.state
    step = instruction.step
    assert step is not None
    if instruction.op == "branch":
        state["pc"] = state["pc"] + 1 if result.output["result"] else instruction.target
    elif instruction.op == "loop":
        assert isinstance(step, ForEachStep)
        items = result.output["items"]
        step_run.output = {"count": len(items), "item_ids": [item["id"] for item in items]}
        step_run.save(update_fields=["output"])
        if items:
            state["frames"].append({"loop": step.id, "as": step.as_, "items": items, "index": 0})
            state["vars"][step.as_] = items[0]
            state["pc"] += 1
        else:
            state["pc"] = instruction.target
        result = StepResult(output=step_run.output)
    else:
        state["pc"] += 1
    state["vars"]["steps"][step.id] = result.output
    audit(
        actor=run.owner,
        action="workflows.step_done",
        target=step_run,
        details={
            "run_id": run.pk,
            "step": step_run.key,
            "kind": step_run.kind,
            "attempts": step_run.attempts,
            "cost": str(step_run.cost),
            "model": step_run.model,
            "manifest_sha256": _manifest_sha(step_run.manifest),
        },
    )


def _manifest_sha(manifest: dict[str, Any]) -> str:
    if not manifest:
        return ""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


def _step_failed(run: Run, step_run: StepRun, instruction: Instruction, program: Program, failure: StepFailed) -> None:
    step = instruction.step
    assert step is not None
    step_run.failures += 1
    step_run.error = str(failure)[:2000]
    if step_run.failures <= step.retries and not isinstance(failure, ItemMissing):
        step_run.status = Status.PENDING
        step_run.save()
        return
    step_run.status = Status.FAILED
    step_run.save()
    audit(
        actor=run.owner,
        action="workflows.step_failed",
        target=step_run,
        outcome="failure",
        details={"run_id": run.pk, "step": step_run.key, "kind": step_run.kind, "failures": step_run.failures},
    )
    state = run.state
    policy = step.on_failure
    if isinstance(failure, ItemMissing) and state["frames"] and policy == "stop":
        policy = "skip_item"  # a deleted customer or document fails its item; the others go on
    if policy == "skip_item" and state["frames"]:
        state["pc"] = program.next_of_loop[state["frames"][-1]["loop"]]
    elif policy in ("continue", "skip_item"):
        state["pc"] += 1
    else:
        run.status = Status.FAILED
        run.error = ERROR_STEP_FAILED.format(key=step_run.key, error=step_run.error)
        run.finished_at = timezone.now()
        audit(
            actor=None,
            actor_username=SYSTEM,
            action="workflows.run_finished",
            target=run,
            outcome="failure",
            details={
                "workflow_id": run.workflow_id,
                "version": run.version.number,
                "status": Status.FAILED,
                "failed_step": step_run.key,
            },
        )


def run_advance(*, run_id: int, seq: int) -> str:
    """One step of a run (the Celery task's body)."""
    found = claim(run_id, seq)
    if found is None:
        return "nothing to do"
    with jobs.Heartbeat(lambda: run_heartbeat(run_id=run_id, step_run_id=found.step_run_id)):
        execute(found)
    return found.key


def run_heartbeat(*, run_id: int, step_run_id: int) -> None:
    now = timezone.now()
    StepRun.objects.filter(pk=step_run_id, status=Status.RUNNING).update(heartbeat_at=now)
    Run.objects.filter(pk=run_id, status=Status.RUNNING).update(heartbeat_at=now)


def run_drive(*, run_id: int, max_steps: int = 100_000) -> Run:
    """Advance a run in this process until it waits or ends (tests, the benchmark, `manage.py` use)."""
    global enqueue
    saved = enqueue
    enqueue = lambda *args: None  # noqa: E731 - the loop below is the queue
    try:
        for _ in range(max_steps):
            run = Run.objects.get(pk=run_id)
            if run.status not in (Status.PENDING, Status.RUNNING):
                return run
            found = claim(run_id, run.seq)
            if found is None:
                run.refresh_from_db()
                if run.status in (Status.PENDING, Status.RUNNING) and run.steps.filter(status=Status.PENDING).exists():
                    # a retry waits for its countdown in Celery; here it goes at once
                    continue
                return run
            execute(found)
    finally:
        enqueue = saved
    return Run.objects.get(pk=run_id)
