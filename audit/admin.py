"""One audit door for the site admin: whatever an admin screen writes is audited in the same transaction.

`AuditedModelAdmin` hooks the calls Django's admin makes around every write: `log_addition` and
`log_change` (after an add or change form, or a list_editable row, is saved) and `log_deletions`
(before a delete, also of a bulk "delete selected"). Django runs the add, change, list_editable and
delete views inside `transaction.atomic`; the changelist's actions are made atomic here, so an event
that cannot be written rolls the change back, and a rolled-back change leaves no event.
`AuditedGuardedModelAdmin` adds guardian's object-permission screens (who may use an assistant profile,
read a knowledge base, see a restricted customer), with the permissions before and after.

What goes into an event follows principle 9 (nothing raw in the trail): fields holding values that are
no one's personal data and no free text (booleans, choices, numbers, dates, foreign keys and
many-to-many relations as ids; roles and permissions by name) are recorded before and after; every
other field (names, e-mails, descriptions, passwords, JSON, files) is only named when it changed.
An admin may list more non-personal fields to record by value in `audit_value_fields`.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse
from guardian.admin import GuardedModelAdmin
from guardian.shortcuts import get_group_perms, get_user_perms

from audit.services import audit

SCREEN = "site admin"
MAX_IDS = 1000  # ids listed in one bulk-action event (the count is always exact)
_BEFORE_ATTRIBUTE = "_audit_before"

# Field types whose values are recorded: no personal data and no free text can hide in them.
VALUE_FIELD_TYPES: tuple[type[models.Field[Any, Any]], ...] = (
    models.BooleanField,
    models.IntegerField,  # also the positive, small, big and auto fields
    models.FloatField,
    models.DecimalField,
    models.DateField,  # also DateTimeField
    models.TimeField,
    models.DurationField,
    models.UUIDField,
)


@dataclass(frozen=True)
class Snapshot:
    """One object's state as the audit trail may see it."""

    values: dict[str, Any] = field(default_factory=dict)  # recorded as they are
    # free text and personal values: a digest to tell whether they changed, never written anywhere
    digests: dict[str, str] = field(default_factory=dict)

    def changed_fields(self, other: Snapshot) -> list[str]:
        names = set(self.values) | set(other.values) | set(self.digests) | set(other.digests)
        return sorted(
            name
            for name in names
            if self.values.get(name) != other.values.get(name) or self.digests.get(name) != other.digests.get(name)
        )

    def filled_text_fields(self) -> list[str]:
        return sorted(name for name, digest in self.digests.items() if digest)


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def _digest(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return ""
    return hashlib.sha256(repr(value).encode("utf-8")).hexdigest()


def _related_labels(model: type[models.Model], pks: Iterable[Any]) -> list[Any]:
    """Roles by name and permissions as app_label.codename (neither is personal); anything else by id."""
    keys = [pk for pk in pks if pk is not None]
    if model is Group:
        return sorted(Group.objects.filter(pk__in=keys).values_list("name", flat=True))
    if model is Permission:
        rows = Permission.objects.filter(pk__in=keys).values_list("content_type__app_label", "codename")
        return sorted(f"{app_label}.{codename}" for app_label, codename in rows)
    return sorted(keys, key=str)


def snapshot(obj: models.Model, *, value_fields: Iterable[str] = (), ignored: Iterable[str] = ()) -> Snapshot:
    """The recordable state of `obj` as stored now (many-to-many relations are read from the database)."""
    extra, skipped = set(value_fields), set(ignored)
    values: dict[str, Any] = {}
    digests: dict[str, str] = {}
    for model_field in obj._meta.concrete_fields:
        if model_field.primary_key or getattr(model_field, "auto_now", False) or model_field.name in skipped:
            continue  # the id is the event's object id; auto_now timestamps change on every save
        if model_field.is_relation:
            raw = getattr(obj, model_field.attname)
            related = model_field.related_model
            if related in (Group, Permission) and raw is not None:
                labels = _related_labels(related, [raw])
                values[model_field.name] = labels[0] if labels else raw
            else:
                values[model_field.name] = raw
        elif model_field.choices or isinstance(model_field, VALUE_FIELD_TYPES) or model_field.name in extra:
            values[model_field.name] = _plain(getattr(obj, model_field.attname))
        else:
            digests[model_field.name] = _digest(getattr(obj, model_field.attname))
    for relation in obj._meta.many_to_many:
        if relation.name in skipped:
            continue
        pks = list(getattr(obj, relation.name).values_list("pk", flat=True)) if obj.pk is not None else []
        values[relation.name] = _related_labels(relation.related_model, pks)
    return Snapshot(values, digests)


def change_details(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    changed = before.changed_fields(after)
    return {
        "fields": changed,
        "before": {name: before.values.get(name) for name in changed if name in before.values or name in after.values},
        "after": {name: after.values.get(name) for name in changed if name in before.values or name in after.values},
    }


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose every write (add, change, list_editable, delete, bulk action) is audited."""

    # The event names are "<audit_subject>_created" / "_changed" / "_deleted" / "_action_run";
    # default "<app_label>.<model_name>" (e.g. "knowledge.knowledgebase_changed").
    audit_subject: str | None = None
    audit_value_fields: tuple[str, ...] = ()  # more fields whose values are not personal: record them
    audit_ignore_fields: tuple[str, ...] = ()
    audit_object_repr: bool = False  # add str(obj) to events: only where it can never be personal
    # True where delete_model / delete_queryset go through a service that writes the deletion event.
    audit_deletions_in_service: bool = False

    # ---- the event -----------------------------------------------------------------------------------
    def audit_action(self, verb: str) -> str:
        subject = self.audit_subject or f"{self.opts.app_label}.{self.opts.model_name}"
        return f"{subject}_{verb}"

    def audit_snapshot(self, obj: models.Model) -> Snapshot:
        return snapshot(obj, value_fields=self.audit_value_fields, ignored=self.audit_ignore_fields)

    def audit_event(self, request: HttpRequest, obj: models.Model, verb: str, details: dict[str, Any]) -> None:
        described = {"screen": SCREEN, **({"object": str(obj)} if self.audit_object_repr else {}), **details}
        audit(actor=request.user, action=self.audit_action(verb), target=obj, request=request, details=described)

    def _stored(self, obj: models.Model) -> models.Model:
        return type(obj)._base_manager.filter(pk=obj.pk).first() or obj

    # ---- before: taken when the admin loads the object, or (list_editable rows) just before saving ------
    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            setattr(obj, _BEFORE_ATTRIBUTE, self.audit_snapshot(obj))
        return obj

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change and getattr(obj, _BEFORE_ATTRIBUTE, None) is None:
            setattr(obj, _BEFORE_ATTRIBUTE, self.audit_snapshot(self._stored(obj)))
        super().save_model(request, obj, form, change)

    # ---- after: Django calls these once the object and its relations are saved, in the same transaction --
    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        after = self.audit_snapshot(self._stored(obj))
        self.audit_event(request, obj, "created", {"fields": after.filled_text_fields(), "after": after.values})
        setattr(obj, _BEFORE_ATTRIBUTE, after)
        return entry

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        before: Snapshot | None = getattr(obj, _BEFORE_ATTRIBUTE, None)
        after = self.audit_snapshot(self._stored(obj))
        if before is None:  # a write path that loaded the object some other way: say so, record the state
            self.audit_event(request, obj, "changed", {"fields": [], "before_unknown": True, "after": after.values})
        elif before.changed_fields(after):
            self.audit_event(request, obj, "changed", change_details(before, after))
        setattr(obj, _BEFORE_ATTRIBUTE, after)
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        entries = super().log_deletions(request, queryset)
        if not self.audit_deletions_in_service:
            for obj in queryset:
                self.audit_event(request, obj, "deleted", {"before": self.audit_snapshot(obj).values})
        return entries

    # ---- bulk actions ---------------------------------------------------------------------------------
    def response_action(self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any) -> Any:
        # Django does not wrap actions in a transaction: "delete selected" would delete and audit row by row.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().response_action(request, queryset, *args, **kwargs)

    def get_actions(self, request: HttpRequest) -> Any:
        actions: dict[str, Any] = super().get_actions(request)
        # delete_selected is audited per object through log_deletions; any other action by this wrapper.
        # (Django 5.2 gives (function, name, description) tuples.)
        audited: dict[str, Any] = {}
        for name, entry in actions.items():
            function, description = entry[0], entry[2]
            if name != "delete_selected":
                function = self._audited_action(function, name)
            audited[name] = (function, name, description)
        return audited

    def _audited_action(self, function: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(modeladmin: Any, request: HttpRequest, queryset: Any) -> Any:
            ids = sorted((str(pk) for pk in queryset.values_list("pk", flat=True)), key=lambda pk: (len(pk), pk))
            response = function(modeladmin, request, queryset)
            audit(
                actor=request.user,
                action=self.audit_action("action_run"),
                object_type=self.opts.label_lower,
                request=request,
                details={"screen": SCREEN, "action": name, "count": len(ids), "ids": ids[:MAX_IDS]},
            )
            return response

        return run


def audited_admin_actions(site: admin.AdminSite | None = None) -> list[str]:
    """Every action name the site admin's screens can write (their names are built per model)."""
    names: set[str] = set()
    for model_admin in (site or admin.site)._registry.values():
        if isinstance(model_admin, AuditedModelAdmin):
            verbs = ["created", "changed", "deleted", "action_run"]
            if isinstance(model_admin, AuditedGuardedModelAdmin):
                verbs.append("access_changed")
            names.update(model_admin.audit_action(verb) for verb in verbs)
    return sorted(names)


class AuditedGuardedModelAdmin(AuditedModelAdmin, GuardedModelAdmin):  # type: ignore[misc]
    """An audited admin with guardian's "Object permissions" screens, whose grants are audited too.

    Guardian writes the grants itself and records nothing; the permissions of the user or role on the
    object are read before and after the screen's POST, inside one transaction with the event.
    """

    def obj_perms_manage_user_view(self, request: HttpRequest, object_pk: Any, user_id: Any) -> HttpResponse:
        grantee = get_user_model().objects.filter(pk=user_id).first() if str(user_id).isdigit() else None
        view = super().obj_perms_manage_user_view
        return self._audited_grant(request, object_pk, grantee, user_id, view)

    def obj_perms_manage_group_view(self, request: HttpRequest, object_pk: Any, group_id: Any) -> HttpResponse:
        grantee = Group.objects.filter(pk=group_id).first() if str(group_id).isdigit() else None
        view = super().obj_perms_manage_group_view
        return self._audited_grant(request, object_pk, grantee, group_id, view)

    def _audited_grant(
        self,
        request: HttpRequest,
        object_pk: Any,
        grantee: Any,
        grantee_id: Any,
        view: Callable[[HttpRequest, Any, Any], HttpResponse],
    ) -> HttpResponse:
        if request.method != "POST" or grantee is None:
            return view(request, object_pk, grantee_id)
        with transaction.atomic(using=router.db_for_write(self.model)):
            # the object as the screen itself finds it: only those this user may manage here
            try:
                obj = self.get_queryset(request).filter(pk=object_pk).first()
            except (ValueError, ValidationError):  # not a primary key at all: the screen answers 404
                obj = None
            if obj is None:
                return view(request, object_pk, grantee_id)
            perms_of = get_group_perms if isinstance(grantee, Group) else get_user_perms
            before = sorted(perms_of(grantee, obj))
            response = view(request, object_pk, grantee_id)
            after = sorted(perms_of(grantee, obj))
            if after != before:
                who: dict[str, Any] = (
                    {"role": grantee.name, "group_id": grantee.pk}
                    if isinstance(grantee, Group)
                    else {"user": grantee.get_username(), "user_id": grantee.pk}
                )
                self.audit_event(
                    request,
                    obj,
                    "access_changed",
                    {
                        **who,
                        "before": before,
                        "after": after,
                        "added": sorted(set(after) - set(before)),
                        "removed": sorted(set(before) - set(after)),
                    },
                )
        return response
