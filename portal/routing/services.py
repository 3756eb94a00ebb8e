"""Routing: which models answer a question (route_decide) and calling them (model_stream).

The assistant streams through `model_stream`; every other caller uses the gated door
`model_complete_gated` (route, egress gate, call, restore). All model traffic goes through
`portal.routing.router` (the only module importing litellm).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.models import Outcome
from audit.services import audit
from governance.gate import Destination, EgressBlocked, GatedPrompt, PromptPart, egress_gate, verify_sealed
from portal.core.memberships import user_role_ids
from portal.core.parameters import parameter_value
from portal.core.types import UserLike
from portal.routing import selectors
from portal.routing.classifier import classify
from portal.routing.models import Budget, CatalogModel, Usage
from portal.routing.money import money_text
from portal.routing.offline import (
    OFFLINE_LABEL,
    OFFLINE_LABEL_BUDGET,
    OFFLINE_LABEL_FALLBACK,
    OFFLINE_LABEL_LOCAL_ONLY,
)
from portal.routing.router import (
    OFFLINE_DEPLOYMENT,
    AttemptResult,
    Deployment,
    attempt_cost,
    cooldowns,
    describe_error,
    release_loop_clients,
    router_cache,
    stream_attempt,
)
from portal.routing.types import (
    OFFLINE_DESTINATION,
    OFFLINE_KEY,
    OFFLINE_TIER,
    TASK_TYPES,
    TIERS,
    CallOutcome,
    RouteDecision,
    StreamDelta,
)

if TYPE_CHECKING:
    from portal.routing.router import Router  # litellm's, re-exported: litellm is imported in router.py only

ERROR_UNKNOWN_TASK_TYPE = "Unknown task type {task_type!r}; use one of: " + ", ".join(TASK_TYPES) + "."
ERROR_BUDGET_REFUSED = "{scope} {period} AI budget of {currency} {limit} is used up ({currency} {spent} spent). {when}"
ERROR_NO_MODEL_CLEARED = "No model is cleared for this prompt, so nothing was sent."
ERROR_ALL_FAILED = "No model could answer right now ({details}). Your question is saved; please try again later."
NOTE_DOWNGRADED = ERROR_BUDGET_REFUSED.replace(" {when}", "") + " Answering with the {to} tier instead of {from_}."
# The offline model costs nothing, so a budget that refuses cloud calls does not refuse it (unless the
# operator turned the offline fallback off).
NOTE_REFUSED_OFFLINE = (
    ERROR_BUDGET_REFUSED.replace(" {when}", "")
    + " Answering with the built-in offline model on this server instead, which costs nothing. {when}"
)
BUDGET_RESETS = {"day": "It resets tomorrow.", "month": "It resets at the start of next month."}
ACTION_MODEL_CALLED = "routing.model_called"
logger = logging.getLogger(__name__)


class BudgetExceeded(Exception):
    """The budget policy refuses this request; the message is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---- deciding -------------------------------------------------------------------------------------
def _fallback_tiers(tier: str) -> list[str]:
    """The other tiers, nearest first; on a tie the stronger tier, so a fallback does not lose quality."""
    position = TIERS.index(tier)
    others = [name for name in TIERS if name != tier]
    return sorted(others, key=lambda name: (abs(TIERS.index(name) - position), -TIERS.index(name)))


def _cheaper_tier(tier: str, available: set[str]) -> str:
    for name in reversed(TIERS[: TIERS.index(tier)]):
        if name in available:
            return name
    return OFFLINE_TIER


@dataclass(frozen=True)
class _BudgetState:
    budget: Budget
    spent: Decimal

    def message(self, template: str, **extra: str) -> str:
        scope = "Your" if self.budget.user_id else f"The {self.budget.role.name if self.budget.role else ''} role's"
        return template.format(
            scope=scope,
            period="daily" if self.budget.period == Budget.Period.DAY else "monthly",
            currency=settings.ROUTING_CURRENCY,
            limit=money_text(self.budget.limit),
            spent=money_text(self.spent),
            when=BUDGET_RESETS[self.budget.period],
            **extra,
        )


def _default_budget(user: UserLike) -> list[Budget]:
    """The Settings screen's monthly budget for users without one of their own or of a role (not stored)."""
    limit = parameter_value("default_budget_per_user")
    if limit is None:
        return []
    return [Budget(user_id=user.pk, period=Budget.Period.MONTH, limit=limit, action=Budget.Action.DOWNGRADE)]


def _exceeded_budgets(user: UserLike) -> list[_BudgetState]:
    if not user.is_authenticated:
        return []
    group_ids = set(user_role_ids(user))
    budgets = [
        budget for budget in selectors.budgets_in_force() if budget.user_id == user.pk or budget.role_id in group_ids
    ] or _default_budget(user)
    exceeded = []
    for budget in budgets:
        since = selectors.period_start(budget.period)
        if budget.user_id:
            spent = selectors.spend_of_user(user_id=budget.user_id, since=since)
        else:
            spent = selectors.spend_of_role(role_name=budget.role.name if budget.role else "", since=since)
        if spent >= budget.limit:
            exceeded.append(_BudgetState(budget, spent))
    # refusals first, then the user's own budget before a role's
    return sorted(exceeded, key=lambda state: (state.budget.action != Budget.Action.REFUSE, not state.budget.user_id))


def _classify_task(question: str) -> tuple[str, str]:
    """The learned task router when one is active (portal/ml), else the keyword classifier, which also
    answers whenever the learned one cannot (its file is missing or tampered with)."""
    from portal.ml.predict import TaskPrediction, task_type_predict

    learned = task_type_predict(question)
    if isinstance(learned, TaskPrediction):
        return learned.task_type, learned.reason
    classification = classify(question)
    note = f" ({learned.note})" if learned is not None else ""
    return classification.task_type, classification.reason + note


def route_decide(*, user: UserLike, task_type: str | None, question: str) -> RouteDecision:
    if task_type in (None, "", "auto"):
        task_type, reason = _classify_task(question)
    elif task_type in TASK_TYPES:
        reason = f"{task_type}: set by the assistant profile"
    else:
        raise ValueError(ERROR_UNKNOWN_TASK_TYPE.format(task_type=task_type))
    tier = selectors.task_tiers()[task_type]
    models = selectors.catalog_enabled()
    offline_fallback = bool(settings.ROUTING_OFFLINE_FALLBACK)
    if not models:
        return RouteDecision(
            task_type=task_type,
            tier=OFFLINE_TIER,
            candidates=(OFFLINE_DESTINATION,),
            reason=f"{reason}; no cloud model is configured, so the built-in offline model answers",
        )
    by_tier: dict[str, list[CatalogModel]] = {name: [] for name in TIERS}
    for model in models:
        by_tier[model.tier].append(model)
    budget_note = ""
    exceeded = _exceeded_budgets(user)
    if exceeded:
        worst = exceeded[0]
        if worst.budget.action == Budget.Action.REFUSE:
            if not offline_fallback:
                raise BudgetExceeded(worst.message(ERROR_BUDGET_REFUSED))
            note = worst.message(NOTE_REFUSED_OFFLINE)
            return RouteDecision(task_type, OFFLINE_TIER, (OFFLINE_DESTINATION,), f"{reason}; over budget", note)
        cheaper = _cheaper_tier(tier, {name for name, rows in by_tier.items() if rows})
        budget_note = worst.message(NOTE_DOWNGRADED, to=cheaper, from_=tier)
        if cheaper == OFFLINE_TIER:
            candidates: tuple[Destination, ...] = (OFFLINE_DESTINATION,)
        else:
            candidates = (*(model.destination() for model in by_tier[cheaper]), OFFLINE_DESTINATION)
        return RouteDecision(task_type, cheaper, candidates, f"{reason} → {tier} tier; over budget", budget_note)
    ordered = list(by_tier[tier])
    fallback_tiers = _fallback_tiers(tier)
    for name in fallback_tiers:
        ordered += by_tier[name]
    reason = f"{reason} → {tier} tier"
    if not by_tier[tier]:
        first = next(name for name in fallback_tiers if by_tier[name])
        reason += f" (no enabled model in it, so {first} first)"
    destinations = [model.destination() for model in ordered]
    if offline_fallback:
        destinations.append(OFFLINE_DESTINATION)
    return RouteDecision(task_type=task_type, tier=tier, candidates=tuple(destinations), reason=reason)


# ---- calling ------------------------------------------------------------------------------------
def _manifest_hash(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def deployments_enabled() -> dict[str, Deployment]:
    """The enabled catalog models' deployments, by key (the catalog is read through the configuration cache)."""
    return {model.key: selectors.deployment_from(model) for model in selectors.catalog_enabled()}


@transaction.atomic
def usage_record(
    *,
    user: UserLike,
    roles: list[str] | None = None,
    assistant_profile_id: int | None,
    decision: RouteDecision,
    deployment: Deployment,
    gated: GatedPrompt,
    result: AttemptResult,
    started: float,
    finished: float,
    outcome: str,
    error_class: str = "",
) -> Usage:
    """One usage row and one audit event for one attempt (the call already happened: nothing to undo)."""
    cost, cost_source = attempt_cost(deployment, result.tokens_in, result.tokens_out)
    authenticated = getattr(user, "is_authenticated", False)
    usage = Usage(
        created_at=timezone.now(),
        user_id=user.pk if authenticated else None,
        username=user.get_username() if authenticated else "",
        roles=selectors.role_names(user) if roles is None else roles,
        assistant_profile_id=assistant_profile_id,
        task_type=decision.task_type,
        tier=decision.tier,
        model_key=deployment.key,
        model_name=deployment.display_name,
        provider=deployment.provider,
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
        cost=cost,
        cost_source=cost_source,
        first_token_ms=None if result.first_token_at is None else (result.first_token_at - started) * 1000,
        total_ms=(finished - started) * 1000,
        outcome=outcome,
        error_class=error_class,
    )
    usage.full_clean(exclude=["user"])  # the signed-in user of this request: no query to re-check it exists
    usage.save()
    audit_outcome = Outcome.SUCCESS if outcome == "success" else Outcome.ERROR
    if error_class == "PermissionError":
        audit_outcome = Outcome.DENIED
    audit(
        actor=user if authenticated else None,
        action=ACTION_MODEL_CALLED,
        target=usage,
        outcome=audit_outcome,
        details={
            "model_key": deployment.key,
            "model": deployment.display_name,
            "litellm_model": deployment.litellm_model,
            "provider": deployment.provider,
            "task_type": decision.task_type,
            "tier": decision.tier,
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
            "tokens_estimated": result.tokens_estimated,
            "cost": str(cost),
            "cost_source": cost_source,
            "first_token_ms": usage.first_token_ms,
            "total_ms": round(usage.total_ms, 1),
            "error_class": error_class,
            "prompt_sha256": gated.prompt_sha256,
            "manifest_sha256": getattr(gated, "manifest_sha256", "") or _manifest_hash(gated.manifest),
            "assistant_profile_id": assistant_profile_id,
        },
    )
    return usage


@dataclass(frozen=True)
class _Call:
    """What every attempt of one call shares: who asks, what was cleared, and how to answer."""

    user: UserLike
    assistant_profile_id: int | None
    decision: RouteDecision
    gated: GatedPrompt
    deployments: Mapping[str, Deployment]
    router: Router
    temperature: float
    max_tokens: int

    async def record(
        self, deployment: Deployment, result: AttemptResult, *, started: float, finished: float, outcome: str,
        error_class: str = "",
    ) -> Usage:  # fmt: skip
        return await sync_to_async(usage_record)(
            user=self.user,
            assistant_profile_id=self.assistant_profile_id,
            decision=self.decision,
            deployment=deployment,
            gated=self.gated,
            result=result,
            started=started,
            finished=finished,
            outcome=outcome,
            error_class=error_class,
        )


@dataclass
class _Progress:
    """What the attempts of one call came to so far."""

    attempts: list[dict[str, Any]] = field(default_factory=list)  # one summary per candidate tried or skipped
    failures: list[str] = field(default_factory=list)  # for the user: which model failed, and why
    total_cost: Decimal = Decimal(0)
    shown_text: bool = False  # some model's text has gone to the reader
    last: Deployment | None = None  # the last deployment tried
    answered: CallOutcome | None = None  # set by the attempt that succeeded

    def add(self, usage: Usage, description: str) -> None:
        self.total_cost += usage.cost
        self.attempts.append(_attempt_summary(usage, description))


async def model_stream(
    *,
    user: UserLike,
    gated: GatedPrompt,
    decision: RouteDecision,
    assistant_profile_id: int | None = None,
    temperature: float = 0.2,
    max_tokens: int = 800,
    deployments: Mapping[str, Deployment] | None = None,
) -> AsyncGenerator[StreamDelta | CallOutcome, None]:
    """Stream the first answer any cleared candidate gives; end with exactly one CallOutcome. Never raises
    for provider faults. If a model's stream is cut after some text, a `StreamDelta("", reset=True)` comes
    before the next model's text. `deployments`: deployments_enabled() as the caller read it just before
    (the assistant does, in its database phase), else read here."""
    started = time.perf_counter()
    if deployments is None:
        deployments = await sync_to_async(deployments_enabled)()
    router = router_cache.get(
        list(deployments.values()),
        num_retries=settings.ROUTING_NUM_RETRIES,
        retry_min_seconds=settings.ROUTING_RETRY_MIN_SECONDS,
    )
    call = _Call(user, assistant_profile_id, decision, gated, deployments, router, temperature, max_tokens)
    progress = _Progress()
    for destination in decision.candidates:
        deployment = _deployment_to_try(call, destination, progress)
        if deployment is None:
            continue
        async with aclosing(_attempt(call, destination, deployment, progress, started=started)) as pieces:
            async for piece in pieces:
                yield piece
        if progress.answered is not None:
            yield progress.answered
            return
    last = progress.last
    failures = progress.failures
    yield CallOutcome(
        model_key=last.key if last else "",
        model_name=last.display_name if last else "",
        provider=last.provider if last else "",
        outcome="error",
        error=ERROR_ALL_FAILED.format(details="; ".join(failures)) if failures else ERROR_NO_MODEL_CLEARED,
        tokens_in=0,
        tokens_out=0,
        cost=progress.total_cost,
        first_token_ms=None,
        total_ms=(time.perf_counter() - started) * 1000,
        attempts=progress.attempts,
    )


def _deployment_to_try(call: _Call, destination: Destination, progress: _Progress) -> Deployment | None:
    """The candidate's deployment, or None (the skip recorded) when it is not cleared, disabled or cooling."""
    key = destination.key
    deployment = OFFLINE_DEPLOYMENT if key == OFFLINE_KEY else call.deployments.get(key)
    if key not in call.gated.destinations:
        progress.attempts.append(_skipped(key, deployment, "not cleared by the gate"))
        return None
    if deployment is None:
        progress.attempts.append(_skipped(key, deployment, "disabled in the catalog"))
        return None
    waiting = cooldowns.remaining(key)
    if waiting:
        progress.attempts.append(_skipped(key, deployment, f"cooling down after a failure ({waiting:.0f} s left)"))
        progress.failures.append(f"{deployment.display_name}: cooling down")
        return None
    return deployment


async def _attempt(
    call: _Call, destination: Destination, deployment: Deployment, progress: _Progress, *, started: float
) -> AsyncGenerator[StreamDelta, None]:
    """One candidate's try: its pieces as they come, then its usage recorded, whatever happened.

    On success `progress.answered` holds the call's outcome (`started` is when the whole call began).
    A provider fault is recorded, starts the model's cooldown (not for a refusal) and lets the next
    candidate try; a reader who leaves still gets the attempt recorded, because the prompt did leave.
    """
    progress.last = deployment
    result = AttemptResult()
    attempt_started = time.perf_counter()
    try:
        verify_sealed(call.gated, destination.key)
        first_piece = True
        async for piece in stream_attempt(
            call.router, deployment, messages=[dict(message) for message in call.gated.messages],
            temperature=call.temperature, max_tokens=call.max_tokens, result=result,
            offline_label=_offline_label(call.decision, call.gated),
        ):  # fmt: skip
            if first_piece and progress.shown_text:
                yield StreamDelta("", reset=True)
            first_piece = False
            progress.shown_text = True
            yield StreamDelta(piece)
    except (GeneratorExit, asyncio.CancelledError):
        finished = time.perf_counter()
        await asyncio.shield(call.record(deployment, result, started=attempt_started, finished=finished,
                                         outcome="error", error_class="Cancelled"))  # fmt: skip
        raise
    except Exception as error:  # every provider fault becomes an outcome, never a crash
        error_class, description = describe_error(error)
        finished = time.perf_counter()
        logger.warning("model call failed: %s %s (%s)", destination.key, error_class, description)
        if error_class != "PermissionError":
            cooldowns.start(destination.key, settings.ROUTING_COOLDOWN_SECONDS)
        usage = await call.record(deployment, result, started=attempt_started, finished=finished, outcome="error",
                                  error_class=error_class)  # fmt: skip
        progress.add(usage, description)
        progress.failures.append(f"{deployment.display_name}: {description}")
        return
    finished = time.perf_counter()
    usage = await call.record(deployment, result, started=attempt_started, finished=finished, outcome="success")
    progress.add(usage, "")
    progress.answered = CallOutcome(
        model_key=deployment.key,
        model_name=deployment.display_name,
        provider=deployment.provider,
        outcome="success",
        error="",
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
        cost=progress.total_cost,
        first_token_ms=None if result.first_token_at is None else (result.first_token_at - started) * 1000,
        total_ms=(finished - started) * 1000,
        attempts=progress.attempts,
    )


def _offline_label(decision: RouteDecision, gated: GatedPrompt) -> str:
    """Why the offline model answers, so the answer is labelled truthfully."""
    cloud = [candidate.key for candidate in decision.candidates if not candidate.is_local]
    if decision.tier == OFFLINE_TIER and decision.budget_note:
        return OFFLINE_LABEL_BUDGET
    if not cloud:
        return OFFLINE_LABEL
    if not any(key in gated.destinations for key in cloud):
        return OFFLINE_LABEL_LOCAL_ONLY
    return OFFLINE_LABEL_FALLBACK


def _skipped(key: str, deployment: Deployment | None, why: str) -> dict[str, Any]:
    """An attempt that never started; same keys as `_attempt_summary` so every attempt renders alike."""
    return {
        "model_key": key,
        "model": deployment.display_name if deployment is not None else "",
        "provider": deployment.provider if deployment is not None else "",
        "outcome": "skipped",
        "error": why,
    }


def _attempt_summary(usage: Usage, description: str) -> dict[str, Any]:
    return {
        "model_key": usage.model_key,
        "model": usage.model_name,
        "provider": usage.provider,
        "outcome": usage.outcome,
        "error": description,
        "error_class": usage.error_class,
        "tokens_in": usage.tokens_in,
        "tokens_out": usage.tokens_out,
        "cost": str(usage.cost),
        "first_token_ms": None if usage.first_token_ms is None else round(usage.first_token_ms, 1),
        "total_ms": round(usage.total_ms, 1),
        "usage_id": usage.pk,
    }


def model_complete(
    *,
    user: UserLike,
    gated: GatedPrompt,
    decision: RouteDecision,
    assistant_profile_id: int | None = None,
    temperature: float = 0.2,
    max_tokens: int = 800,
) -> tuple[str, CallOutcome]:
    """The whole answer at once, for Celery tasks and other sync callers."""

    async def collect() -> tuple[str, CallOutcome]:
        pieces: list[str] = []
        outcome: CallOutcome | None = None
        try:
            async for item in model_stream(
                user=user,
                gated=gated,
                decision=decision,
                assistant_profile_id=assistant_profile_id,
                temperature=temperature,
                max_tokens=max_tokens,
            ):
                if isinstance(item, CallOutcome):
                    outcome = item
                elif item.reset:
                    pieces.clear()
                else:
                    pieces.append(item.text)
        finally:
            await release_loop_clients()  # this loop ends with the call (async_to_sync)
        assert outcome is not None  # model_stream always ends with one
        return "".join(pieces), outcome

    return async_to_sync(collect)()


# ---- the gated door for everyone but the assistant's stream --------------------------------------
@dataclass(frozen=True)
class GatedCompletion:
    """What came of one gated model call: the restored text, or why nothing was sent."""

    text: str
    decision: RouteDecision | None
    gated: GatedPrompt | None
    outcome: CallOutcome | None
    not_sent: str = ""  # why nothing left the server (budget, governance, no model cleared); "" when sent

    @property
    def answered(self) -> bool:
        return self.outcome is not None and self.outcome.outcome == "success"


def model_complete_gated(
    *,
    user: UserLike,
    parts: Sequence[PromptPart],
    task_type: str,
    question: str,
    conversation_key: str,
    subject: tuple[str, str | int],
    temperature: float = 0.2,
    max_tokens: int = 800,
) -> GatedCompletion:
    """Route, gate, call and restore in one synchronous call: the door for memory learning, workflow steps
    and any other caller that needs a cloud model outside the assistant's streamed answer.

    The gate judges every part under the user's role and audits its decision about `subject`; the call
    is audited per attempt; placeholders in the answer are restored from this call's vault. Nothing is
    sent when the budget, the policy or the catalog says no: `not_sent` says why.
    """
    try:
        decision = route_decide(user=user, task_type=task_type, question=question)
        gated = egress_gate(
            user=user, conversation_key=conversation_key, destinations=decision.candidates, parts=parts,
            subject=subject,
        )  # fmt: skip
    except (BudgetExceeded, EgressBlocked) as refused:
        return GatedCompletion(text="", decision=None, gated=None, outcome=None, not_sent=str(refused))
    if not gated.destinations:
        return GatedCompletion(text="", decision=decision, gated=gated, outcome=None, not_sent=ERROR_NO_MODEL_CLEARED)
    raw, outcome = model_complete(
        user=user, gated=gated, decision=decision, temperature=temperature, max_tokens=max_tokens
    )
    restorer = gated.restorer()
    text = restorer.feed(raw) + restorer.finish() if outcome.outcome == "success" else ""
    return GatedCompletion(text=text, decision=decision, gated=gated, outcome=outcome)


# ---- the Models page's "Test connection" ------------------------------------------------------------------
CONNECTION_TEST_PROMPT = "This is a connection test from the staff portal. Reply with the single word OK."
CHANGE_CATALOG_PERMISSION = "routing.change_catalogmodel"
ERROR_TEST_PERMISSION = "Only an administrator may test a model's connection."
ERROR_TEST_NOT_CLEARED = (
    "The egress policy does not let a prompt of your role go to this model, so nothing was sent: "
    "the gate's decision is in the audit trail."
)


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    message: str
    total_ms: float | None = None


def model_test_connection(*, actor: UserLike, model: CatalogModel) -> ConnectionTest:
    """Send a fixed, harmless prompt to this one model (no fallback), through the gate like any prompt: the
    gate audits its decision, the call is audited and counted as usage, and the result is audited."""
    if not actor.has_perm(CHANGE_CATALOG_PERMISSION):
        raise PermissionDenied(ERROR_TEST_PERMISSION)
    decision = RouteDecision(task_type="routine", tier=model.tier, candidates=(model.destination(),),
                             reason="connection test from the Models page")  # fmt: skip
    try:
        gated = egress_gate(
            user=actor, conversation_key=f"connection-test-{model.pk}-{int(time.time() * 1000)}",
            destinations=decision.candidates, parts=[PromptPart(kind="question", text=CONNECTION_TEST_PROMPT)],
            subject=("routing.catalogmodel", model.pk),
        )  # fmt: skip
    except EgressBlocked as refused:
        result = ConnectionTest(ok=False, message=str(refused))
    else:
        if not gated.destinations:
            result = ConnectionTest(ok=False, message=ERROR_TEST_NOT_CLEARED)
        else:
            text, outcome = model_complete(user=actor, gated=gated, decision=decision, temperature=0, max_tokens=16)
            if outcome.outcome == "success":
                words = len(text.split())
                result = ConnectionTest(ok=True, total_ms=outcome.total_ms,
                                        message=f"{model.display_name} answered ({words} word{'s' * (words != 1)}) "
                                                f"in {outcome.total_ms:.0f} ms.")  # fmt: skip
            else:
                result = ConnectionTest(ok=False, total_ms=outcome.total_ms,
                                        message=f"{model.display_name} did not answer: {outcome.error}")  # fmt: skip
    audit(actor=actor, action="routing.model_tested", target=model,
          outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
          details={"model_key": model.key, "ok": result.ok, "total_ms": result.total_ms})  # fmt: skip
    return result


# ---- budgets (the Budgets screen; the site admin's budget screens are audited by its mixin) ---------------
BUDGET_PERMISSIONS = {
    "create": "routing.add_budget",
    "change": "routing.change_budget",
    "delete": "routing.delete_budget",
}


def _budget_state(budget: Budget) -> dict[str, Any]:
    """What the trail records of a budget: its scope by role name or user id, never a person's name."""
    return {
        "role": budget.role.name if budget.role is not None else None,
        "user_id": budget.user_id,
        "period": budget.period,
        "limit": str(budget.limit),
        "action": budget.action,
        "enabled": budget.enabled,
    }


def _budget_require(actor: UserLike, verb: str) -> None:
    if not actor.has_perm(BUDGET_PERMISSIONS[verb]):
        raise PermissionDenied("You may not change budgets.")


@transaction.atomic
def budget_save(*, actor: UserLike, budget: Budget) -> Budget:
    """Create or change a budget (validated by the model's clean(): a role or a user, not both), audited."""
    creating = budget.pk is None
    _budget_require(actor, "create" if creating else "change")
    before = None if creating else _budget_state(Budget.objects.select_for_update().get(pk=budget.pk))
    budget.full_clean()
    budget.save()
    after = _budget_state(budget)
    if before == after:
        return budget
    details = {"after": after} if creating else {"before": before, "after": after}
    verb = "created" if creating else "changed"
    audit(actor=actor, action=f"routing.budget_{verb}", target=budget, details=details)
    return budget


@transaction.atomic
def budget_delete(*, actor: UserLike, budget: Budget) -> None:
    _budget_require(actor, "delete")
    details = {"before": _budget_state(budget)}
    audit(actor=actor, action="routing.budget_deleted", target=budget, details=details)
    budget.delete()
