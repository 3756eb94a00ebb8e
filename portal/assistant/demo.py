"""Demo assistant profiles, created once with the demo organisation."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm

from audit.services import audit
from governance.roles import ADMINISTRATOR, GOVERNANCE_OFFICER, STAFF
from knowledge.demo import DEMO_KNOWLEDGE_BASE
from knowledge.selectors import knowledge_base_by_name
from portal.assistant.models import AssistantProfile


@dataclass(frozen=True)
class DemoProfile:
    name: str
    description: str
    instructions: str
    task_type: str
    temperature: float
    max_tokens: int
    roles: tuple[str, ...]
    uses_demo_knowledge: bool
    all_readable_knowledge: bool = False


DEMO_PROFILES = (
    DemoProfile(
        name="Handbook helper",
        description="Quick answers from the handbook and other knowledge you may read, with the pages they cite.",
        instructions="Keep answers short (a few sentences or a short list). Always cite the handbook passage.",
        task_type="routine",
        temperature=0.1,
        max_tokens=500,
        roles=(STAFF, ADMINISTRATOR, GOVERNANCE_OFFICER),
        uses_demo_knowledge=True,
        all_readable_knowledge=True,
    ),
    DemoProfile(
        name="Analyst",
        description="Careful reasoning over the handbook: compare options, weigh risks, explain the trade-offs.",
        instructions=(
            "Work step by step. State your assumptions, compare the options, and end with a clear "
            "recommendation. Cite the passages you rely on."
        ),
        task_type="analyze",
        temperature=0.3,
        max_tokens=1200,
        roles=(ADMINISTRATOR, GOVERNANCE_OFFICER),
        uses_demo_knowledge=True,
    ),
)


@transaction.atomic
def demo_profiles_ensure() -> list[AssistantProfile]:
    """Create the demo profiles that do not exist yet (an administrator's later edits are kept)."""
    demo_knowledge = knowledge_base_by_name(name=DEMO_KNOWLEDGE_BASE)
    created = []
    for demo in DEMO_PROFILES:
        if AssistantProfile.objects.filter(name=demo.name).exists():
            continue
        profile = AssistantProfile(
            name=demo.name,
            description=demo.description,
            instructions=demo.instructions,
            task_type=demo.task_type,
            temperature=demo.temperature,
            max_tokens=demo.max_tokens,
            all_readable_knowledge=demo.all_readable_knowledge,
        )
        profile.full_clean()
        profile.save()
        if demo.uses_demo_knowledge and demo_knowledge is not None:
            profile.knowledge_bases.add(demo_knowledge)
        for role in Group.objects.filter(name__in=demo.roles):
            assign_perm("assistant.use_assistantprofile", role, profile)
        audit(
            actor=None,
            actor_username="system",
            action="assistant.profile_created",
            target=profile,
            details={"name": profile.name, "roles": sorted(demo.roles), "demo": True},
        )
        created.append(profile)
    return created
