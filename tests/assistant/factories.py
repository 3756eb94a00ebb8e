from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import factory
from django.contrib.auth.models import Group, User
from guardian.shortcuts import assign_perm

from knowledge.models import KnowledgeBase
from portal.assistant.models import AssistantProfile, Conversation, Message, MessageRole


def _grant_use(
    profile: AssistantProfile, create: bool, extracted: Iterable[str | User | Group] | None, **kwargs: Any
) -> None:
    """AssistantProfileFactory.create(usable_by=[...]): role names, roles or users that may use the profile."""
    for grantee in extracted or ():
        target = Group.objects.get(name=grantee) if isinstance(grantee, str) else grantee
        assign_perm("assistant.use_assistantprofile", target, profile)


def _attach_knowledge_bases(
    profile: AssistantProfile, create: bool, extracted: Iterable[KnowledgeBase] | None, **kwargs: Any
) -> None:
    if create and extracted:
        profile.knowledge_bases.set(list(extracted))


class AssistantProfileFactory(factory.django.DjangoModelFactory[AssistantProfile]):
    class Meta:
        model = AssistantProfile
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Helper {n}")
    instructions = "Answer briefly."
    task_type = "routine"

    usable_by = factory.PostGeneration(_grant_use)
    knowledge_bases = factory.PostGeneration(_attach_knowledge_bases)


class ConversationFactory(factory.django.DjangoModelFactory[Conversation]):
    class Meta:
        model = Conversation

    owner = None
    profile = factory.SubFactory(AssistantProfileFactory)
    title = factory.Sequence(lambda n: f"Conversation {n}")


class MessageFactory(factory.django.DjangoModelFactory[Message]):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    role = MessageRole.USER
    content = "What is the refund policy?"


def knowledge_base_with(
    *, name: str, passages: Sequence[tuple[str, str, int | None]], readers: Iterable[str] = ("Staff",)
) -> KnowledgeBase:
    """A knowledge base with one ready document per (title, text, page) passage, readable by the roles."""
    from knowledge.chunking import ChunkDraft
    from knowledge.models import Document
    from knowledge.services import chunks_store, document_activate, knowledge_base_create, knowledge_base_grant

    knowledge_base = knowledge_base_create(actor=None, name=name)
    for role in readers:
        knowledge_base_grant(
            actor=None, knowledge_base=knowledge_base, level="view", group=Group.objects.get(name=role)
        )
    for index, (title, text, page) in enumerate(passages):
        document = Document.objects.create(
            knowledge_base=knowledge_base, title=title, original_filename=f"{index}.txt", sha256=f"{index:064d}"
        )
        draft = ChunkDraft(text=text, heading_path="", page_number=page, token_count=len(text.split()))
        chunks_store(document=document, generation=1, drafts=[draft])
        document_activate(document_id=document.pk, generation=1)
    return knowledge_base
