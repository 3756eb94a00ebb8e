"""Reads for knowledge bases; every selector scopes by the user's permissions in the query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.urls import reverse
from guardian.shortcuts import get_objects_for_user

from audit.privacy import text_fingerprint
from audit.services import audit
from knowledge import embeddings, search
from knowledge.models import Chunk, Document, KnowledgeBase, pages_label
from portal.core.access import not_visible

ERROR_NO_ACCESS = "You do not have this access to the knowledge base."
MAX_QUERY_LENGTH = 1000


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: int
    document_title: str
    knowledge_base_id: int
    knowledge_base_name: str
    classification: str
    heading_path: str
    page_number: int | None
    text: str
    score: float
    url: str
    snippet_html: str = ""  # escaped text with <mark> around the query's terms
    position: int = 0
    page_end: int | None = None  # last page of a chunk that runs on over a page break

    @property
    def pages_label(self) -> str:
        return pages_label(self.page_number, self.page_end)


def knowledge_bases_for_user(
    *, user: AbstractBaseUser | AnonymousUser, permission: str = "view", include_unlisted: bool = False
) -> QuerySet[KnowledgeBase]:
    """The bases the user holds `permission` on. Unlisted bases (a conversation's attached files) only with
    `include_unlisted`, for the callers that then name the one they mean: lists and pickers never show them."""
    if not user.is_authenticated:
        return KnowledgeBase.objects.none()
    bases = get_objects_for_user(
        user, f"knowledge.{permission}_knowledgebase", klass=KnowledgeBase, accept_global_perms=False
    )
    if not include_unlisted:
        bases = bases.filter(unlisted=False)
    return bases.order_by("name")


def knowledge_bases_readable_among(
    *, user: AbstractBaseUser | AnonymousUser, knowledge_base_ids: Iterable[int]
) -> list[KnowledgeBase]:
    """Those of these listed bases the user may read, by id: what `knowledge_bases_for_user(user=user)
    .filter(pk__in=...)` holds (guardian's rules: a grant to the user or one of their roles; superusers read
    all), with the grant as a plain subquery, cheaper to build at every question than guardian's."""
    wanted = sorted({int(pk) for pk in knowledge_base_ids})
    if not wanted or not user.is_authenticated:
        return []
    bases = KnowledgeBase.objects.filter(pk__in=wanted, unlisted=False)
    if not getattr(user, "is_superuser", False):
        granted = RawSQL(*search.granted_knowledge_bases_sql(user.pk, "view_knowledgebase"))  # noqa: S611
        bases = bases.filter(pk__in=granted)
    return list(bases.order_by("pk"))


ERROR_NO_CREATE_PERMISSION = "You may not create knowledge bases."


def may_create_knowledge_base(*, user: User | AnonymousUser) -> bool:
    return bool(user.has_perm("knowledge.add_knowledgebase"))


def require_knowledge_base_creation(*, user: User | AnonymousUser) -> None:
    if not may_create_knowledge_base(user=user):
        raise PermissionDenied(ERROR_NO_CREATE_PERMISSION)


def knowledge_base_by_name(*, name: str) -> KnowledgeBase | None:
    """A system read (the demo data): no user, so no permission scoping."""
    return KnowledgeBase.objects.filter(name=name).first()


def knowledge_base_classifications() -> list[tuple[int, str, str]]:
    """(id, name, label) of every knowledge base, by name: a system read for governance's officers, who
    decide where each label may go (their permission is checked by the caller)."""
    return list(
        KnowledgeBase.objects.filter(unlisted=False).order_by("name").values_list("id", "name", "classification")
    )


def knowledge_base_label(*, knowledge_base_id: int) -> str | None:
    """A base's classification label (None if there is no such base): a system read, for a caller that has
    already shown the base to its viewer."""
    return KnowledgeBase.objects.filter(pk=knowledge_base_id).values_list("classification", flat=True).first()


def knowledge_base_for_user(*, user: User, pk: int, permission: str = "view") -> KnowledgeBase:
    """404 for those who may not see it; PermissionDenied for viewers lacking `permission`."""
    knowledge_base = knowledge_bases_for_user(user=user).filter(pk=pk).first()
    if knowledge_base is None:
        raise not_visible(KnowledgeBase, pk, "No such knowledge base.")
    if permission != "view" and not user.has_perm(f"knowledge.{permission}_knowledgebase", knowledge_base):
        raise PermissionDenied(ERROR_NO_ACCESS)
    return knowledge_base


def documents_for_user(
    *, user: User, knowledge_base: KnowledgeBase | None = None, include_unlisted: bool = False
) -> QuerySet[Document]:
    """Documents of knowledge bases the user views, minus role-restricted ones (editors see all); those of
    unlisted bases only with `include_unlisted`."""
    documents = Document.objects.select_related("knowledge_base").filter(
        knowledge_base__in=knowledge_bases_for_user(user=user, include_unlisted=include_unlisted)
    )
    if knowledge_base is not None:
        documents = documents.filter(knowledge_base=knowledge_base)
    if user.is_superuser:
        return documents
    restricted = Document.restricted_to_roles.through.objects.filter(document_id=OuterRef("pk"))
    allowed = restricted.filter(group__in=user.groups.all())
    editable = knowledge_bases_for_user(user=user, permission="change", include_unlisted=include_unlisted)
    return documents.filter(~Exists(restricted) | Exists(allowed) | Q(knowledge_base__in=editable))


def document_for_user(*, user: User, pk: int, permission: str = "view") -> Document:
    # Also a document attached to a conversation (an unlisted base): its owner follows citations to it.
    document = documents_for_user(user=user, include_unlisted=True).filter(pk=pk).first()
    if document is None:
        raise not_visible(Document, pk, "No such document.")
    if permission != "view" and not user.has_perm(f"knowledge.{permission}_knowledgebase", document.knowledge_base):
        raise PermissionDenied(ERROR_NO_ACCESS)
    return document


def document_chunks(*, document: Document) -> QuerySet[Chunk]:
    return (
        Chunk.objects.filter(document=document, generation=document.active_generation)
        .order_by("position")
        .defer("embedding")
    )


def document_url(document_id: int, page_number: int | None) -> str:
    url = reverse("knowledge:document_detail", args=[document_id])
    return f"{url}#page-{page_number}" if page_number else url


def search_query(query: str) -> str:
    """The text a search runs with: stripped and cut to MAX_QUERY_LENGTH."""
    return (query or "").strip()[:MAX_QUERY_LENGTH]


def retrieve_ahead(query: str) -> None:
    """A `retrieve(query=...)` follows soon: start embedding its query now, on another thread."""
    query = search_query(query)
    if query:
        embeddings.embed_query_ahead(query)


def retrieve(
    *,
    user: User | AnonymousUser,
    query: str,
    knowledge_bases: Iterable[KnowledgeBase] | None = None,
    k: int = 8,
    audit_event: bool = True,
    mode: str = "hybrid",
    snippets: bool = False,
    searched_as: list[str] | None = None,
) -> list[RetrievedChunk]:
    """The chunks best matching `query` among those the user may read (permission filter in SQL). When its
    misspelt words were searched as the documents write them, that text is appended to `searched_as`."""
    query = search_query(query)
    knowledge_base_ids = None if knowledge_bases is None else [kb.pk for kb in knowledge_bases]
    results: list[RetrievedChunk] = []
    if query and k > 0 and (knowledge_base_ids is None or knowledge_base_ids):
        acl = search.acl_for(user, knowledge_base_ids)
        rewritten: list[str] = []
        ranked = search.hybrid_search(query, acl, k, mode=mode, searched_as=rewritten)
        spelt = rewritten[0] if rewritten else query  # misspelt words as the documents write them
        if searched_as is not None:
            searched_as.extend(rewritten)
        results = _hydrate(ranked, spelt if snippets else "", spelt)
    if audit_event:
        audit(
            actor=user,
            action="knowledge.searched",
            details={
                # never the query itself (people paste card numbers, keys, e-mails into search boxes)
                **text_fingerprint(query, name="query"),
                "mode": mode,
                "knowledge_base_ids": knowledge_base_ids,
                "chunk_ids": [result.chunk_id for result in results],
            },
        )
    return results


HYDRATED_FIELDS = (
    "document_id", "knowledge_base_id", "heading_path", "page_number", "page_end", "page_starts", "text", "position",
    "document__title", "knowledge_base__name", "knowledge_base__classification",
)  # fmt: skip


def _hydrate(ranked: list[tuple[int, float]], snippet_query: str, query: str = "") -> list[RetrievedChunk]:
    if not ranked:
        return []
    chunks = {
        chunk.pk: chunk
        for chunk in Chunk.objects.filter(pk__in=[chunk_id for chunk_id, _ in ranked])
        .select_related("document", "knowledge_base")
        .only(*HYDRATED_FIELDS)
    }
    snippets = search.highlighted_snippets(snippet_query, list(chunks)) if snippet_query else {}
    cited = search.cited_pages(query, {pk: (chunk.text, chunk.page_starts) for pk, chunk in chunks.items()})
    results = []
    for chunk_id, score in ranked:
        chunk = chunks.get(chunk_id)
        if chunk is None:
            continue  # replaced by a new version between the two queries
        results.append(
            RetrievedChunk(
                chunk_id=chunk.pk,
                document_id=chunk.document_id,
                document_title=chunk.document.title,
                knowledge_base_id=chunk.knowledge_base_id,
                knowledge_base_name=chunk.knowledge_base.name,
                classification=chunk.knowledge_base.classification,
                heading_path=chunk.heading_path,
                page_number=chunk.page_number,
                page_end=chunk.page_end,
                text=chunk.text,
                score=float(score),
                url=document_url(chunk.document_id, cited.get(chunk.pk, chunk.page_number)),
                snippet_html=snippets.get(chunk.pk, ""),
                position=chunk.position,
            )
        )
    return results


# ---- reads for the local models (portal/ml): system reads, not on behalf of a user ------------------
@dataclass(frozen=True)
class LabelledChunk:
    chunk_id: int
    document_id: int
    knowledge_base_id: int
    label: str  # the knowledge base's classification
    text: str
    embedding: list[float] | None = None


def labelled_chunks(
    *, document_id: int | None = None, after_id: int = 0, limit: int | None = None, with_embeddings: bool = True
) -> list[LabelledChunk]:
    """Searchable chunks with their knowledge base's label, in id order: training data for the sensitivity
    classifier and the passages its scan looks at. No permission filter: only background tasks call this."""
    from knowledge.search import ACTIVE_CHUNK_SQL

    chunks = Chunk.objects.filter(pk__gt=after_id).extra(where=[ACTIVE_CHUNK_SQL.format(a="knowledge_chunk")])
    if document_id is not None:
        chunks = chunks.filter(document_id=document_id)
    fields = ["pk", "document_id", "knowledge_base_id", "knowledge_base__classification", "text"]
    rows = chunks.order_by("pk").values_list(*fields, *(["embedding"] if with_embeddings else []))
    if limit is not None:
        rows = rows[:limit]
    return [
        LabelledChunk(
            chunk_id=row[0], document_id=row[1], knowledge_base_id=row[2], label=row[3], text=row[4],
            embedding=[float(value) for value in row[5]] if with_embeddings and row[5] is not None else None,
        )
        for row in rows
    ]  # fmt: skip


def listed_knowledge_bases() -> QuerySet[KnowledgeBase]:
    """Every base but the unlisted ones (a conversation's attached files): what an administrator may choose
    from for a profile; a system read (the caller checks the administrator's permission)."""
    return KnowledgeBase.objects.filter(unlisted=False).order_by("name")


def knowledge_base_names() -> set[str]:
    """Names of every knowledge base, for checking definitions that name one (workflows); not a read of content."""
    return set(KnowledgeBase.objects.filter(unlisted=False).values_list("name", flat=True))


def document_knowledge_base_id(*, document_id: int) -> int | None:
    """The knowledge base of a document (for the workers of apps built on top; no permission involved)."""
    return Document.objects.filter(pk=document_id).values_list("knowledge_base_id", flat=True).first()


def chunks_in_knowledge_base(*, knowledge_base_id: int, chunk_ids: Iterable[int]) -> set[int]:
    """Which of `chunk_ids` belong to the base (for the workers of apps built on top; no permission involved)."""
    wanted = {int(chunk_id) for chunk_id in chunk_ids}
    if not wanted:
        return set()
    return set(Chunk.objects.filter(knowledge_base_id=knowledge_base_id, pk__in=wanted).values_list("pk", flat=True))
