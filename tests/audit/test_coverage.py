"""Every change the code can make leaves an audit event: checked by reading the source of every app.

The scan (audit/coverage.py) looks at each public function of every app's `services.py` or `services/`
package, including apps that do not exist yet: a new service that writes data without calling
`audit(...)` makes `test_every_service_that_writes_data_audits_it` fail with its name and line.
The site admin is the other door: every screen registered on `admin.site` that can add, change or
delete must use audit.admin's audited admins (`test_every_site_admin_screen_that_can_write_is_audited`);
the screens themselves are exercised with a real client in tests/*/test_admin.py.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audit.admin import AuditedGuardedModelAdmin, AuditedModelAdmin, audited_admin_actions
from audit.coverage import audited_actions, scan, unaudited_writers
from audit.models import AuditEvent
from tests.accounts.factories import DEFAULT_PASSWORD

# Public service functions allowed to write without an audit event of their own. Each needs a reason a
# reviewer would accept; "the caller audits" is only acceptable for a function no view or task calls alone.
ALLOWED_UNAUDITED: dict[str, str] = {
    # The audit writer itself: it *is* the event.
    "audit.services.audit": "appends the audit event itself",
    # Writes a new generation of chunks that stays invisible until document_activate switches it on;
    # that switch is the audited change ("knowledge.document_ready"), in the same ingestion transaction.
    "knowledge.services.chunks_store": "stores inactive chunks; activation is audited",
    # A running job's liveness stamp, renewed every few seconds (portal.core.jobs): it changes nothing a person
    # sees or decides on; what the sweep does when it stops (requeue, give up) is audited.
    "knowledge.services.document_heartbeat": "liveness stamp of the running ingestion task",
    "audit.services.audit_export_heartbeat": "liveness stamp of the running export task",
    "portal.subjects.services.subject_request_heartbeat": "liveness stamp of the running data-subject request",
    # The deleting primitive of conversation_delete and of the retention run's batches, each of which audits the
    # deletion (assistant.conversation_deleted, retention.deleted) in the same transaction; no view calls it.
    "portal.retention.services.conversations_purge": "its callers audit the deletion",
}

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def test_every_service_that_writes_data_audits_it() -> None:
    violations = [v for v in unaudited_writers() if v.function not in ALLOWED_UNAUDITED]
    assert not violations, (
        "These services change data but never call audit.services.audit() (directly or through a helper).\n"
        "Record an event in the same transaction, or add the function to ALLOWED_UNAUDITED with a reason:\n  "
        + "\n  ".join(str(violation) for violation in violations)
    )


def test_the_allow_list_names_only_functions_that_exist() -> None:
    functions = scan().functions
    assert not [name for name in ALLOWED_UNAUDITED if name not in functions]


def _catalogue() -> list[str]:
    """The scanned actions, with the site admin's (named per model at run time) in place of its one call."""
    scanned = {
        action
        for action, places in scan().actions.items()
        if not all(place.startswith("audit.admin:") for place in places)
    }
    return sorted(scanned | set(audited_admin_actions()))


def test_the_catalogue_lists_every_audited_action_with_a_proper_name() -> None:
    actions = _catalogue()
    assert set(audited_actions()) - set(actions) <= {"<dynamic>"}
    print("\n".join(actions))  # the catalogue, visible with `pytest -s`
    # f-strings appear as patterns ("routing.*_changed"); anything else must be a literal "app.event_name"
    # or a module constant, so the catalogue and the review page's action filter know it
    assert not [action for action in actions if "*" not in action and not ACTION_NAME.match(action)]
    # sign-ins, role changes, exports are audited today; other apps add theirs
    for expected in (
        "auth.login",
        "auth.logout",
        "auth.login_failed",
        "user.created",
        "user.updated",
        "user.roles_changed",
        "user.site_access_changed",
        "audit.exported",
        "knowledge.document_moved",
        # site admin screens
        "knowledge.knowledgebase_changed",
        "knowledge.knowledgebase_access_changed",
        "customers.customer_access_changed",
        "auth.user_changed",
        "auth.group_changed",
        "routing.catalogmodel_deleted",
        "assistant.profile_access_changed",
    ):
        assert expected in actions


def _superuser_request() -> Any:
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = User(username="root", is_superuser=True, is_staff=True, is_active=True)
    return request


def _writes(model_admin: Any, request: Any) -> list[str]:
    checks = {
        "add": model_admin.has_add_permission(request),
        "change": model_admin.has_change_permission(request),
        "delete": model_admin.has_delete_permission(request),
    }
    return [name for name, allowed in checks.items() if allowed]


def test_every_site_admin_screen_that_can_write_is_audited() -> None:
    """A ModelAdmin that can add, change or delete (even for a superuser) must be an audited one."""
    from django.contrib import admin
    from guardian.admin import GuardedModelAdminMixin

    request = _superuser_request()
    violations = []
    for model, model_admin in admin.site._registry.items():
        writes = _writes(model_admin, request)
        if writes and not isinstance(model_admin, AuditedModelAdmin):
            violations.append(f"{model._meta.label}: {type(model_admin).__name__} can {writes} without audit")
        if isinstance(model_admin, GuardedModelAdminMixin) and not isinstance(model_admin, AuditedGuardedModelAdmin):
            violations.append(
                f"{model._meta.label}: object-permission screens without audit (AuditedGuardedModelAdmin)"
            )
        if writes and model_admin.get_inline_instances(request):
            violations.append(f"{model._meta.label}: inline rows are saved without an event of their own")
    assert not violations, "\n".join(violations)


def test_what_the_search_filters_on_cannot_change_in_place_in_the_admin() -> None:
    from django.contrib import admin

    from knowledge.models import Chunk, Document, LexicalStatistics, Posting, TermStatistic

    request = _superuser_request()
    # a document's knowledge base moves only with document_move (its chunks and postings carry copies)
    assert "knowledge_base" in admin.site._registry[Document].get_readonly_fields(request, None)
    for model in (Chunk, Posting, TermStatistic, LexicalStatistics):
        model_admin = admin.site._registry.get(model)
        assert model_admin is None or not _writes(model_admin, request), model._meta.label


def test_the_scanner_finds_unaudited_writers_and_accepts_audited_ones(tmp_path: Path) -> None:
    app = tmp_path / "shop"
    (app / "services").mkdir(parents=True)
    (app / "services" / "__init__.py").write_text("")
    (app / "services" / "orders.py").write_text(
        textwrap.dedent(
            """
            from audit.services import audit
            ORDER_PLACED = "shop.order_placed"

            def order_place(*, actor, order):
                order.save()
                audit(actor=actor, action=ORDER_PLACED, target=order)

            def order_cancel(*, actor, order):
                _mark(order)

            def _mark(order):
                Order.objects.filter(pk=order.pk).update(state="cancelled")

            def order_tag(*, actor, order, tags):
                order.tags.set(tags)
                _record(actor, order)

            def _record(actor, order):
                audit(actor=actor, action=f"shop.tagged_{order.pk}", target=order)

            def order_archive(*, actor, order):
                order_place(actor=actor, order=order)

            def order_summary(*, order):
                seen = set()
                seen.add(order.pk)
                details = {}
                details.update(total=1)
                return details
            """
        )
    )
    scan.cache_clear()
    try:
        violations = {violation.function for violation in unaudited_writers(tmp_path)}
        actions = audited_actions(tmp_path)
    finally:
        scan.cache_clear()
    assert violations == {"shop.services.orders.order_cancel"}
    assert actions == ["shop.order_placed", "shop.tagged_*"]


@pytest.mark.django_db
def test_sign_in_sign_out_and_failed_sign_in_are_audited(sam: Any) -> None:
    client = Client()
    client.post(reverse("login"), {"username": "sam", "password": "wrong password"})
    failed = AuditEvent.objects.filter(action="auth.login_failed").latest("seq")
    assert failed.actor_username == "sam" and failed.outcome == "failure"
    assert "wrong password" not in str(failed.details) and set(failed.details) <= {"username", "ip"}
    client.post(reverse("login"), {"username": "sam", "password": DEFAULT_PASSWORD})
    login = AuditEvent.objects.filter(action="auth.login").latest("seq")
    assert login.actor_id == sam.pk and login.actor_roles == ["Staff"]
    client.post(reverse("logout"))
    assert AuditEvent.objects.filter(action="auth.logout", actor_id=sam.pk).exists()


@pytest.mark.django_db
def test_role_changes_are_audited_with_before_and_after(alice: Any, sam: Any) -> None:
    from portal.accounts.services import user_update

    user_update(
        actor=alice, user=sam, email=sam.email, first_name=sam.first_name, last_name=sam.last_name,
        is_active=True, role_names=["Staff", "Auditor"],
    )  # fmt: skip
    event = AuditEvent.objects.filter(action="user.roles_changed").latest("seq")
    assert event.actor_username == "alice" and event.actor_roles == ["Administrator"]
    assert event.object_type == "auth.user" and event.object_id == str(sam.pk)
    assert event.details["before"] == ["Staff"] and event.details["added"] == ["Auditor"]
