"""Erase a demo customer and show, table by table, that none of their values is left anywhere.

    PORTAL_DB_NAME=portal_erasure_eval python manage.py migrate
    PORTAL_DB_NAME=portal_erasure_eval python manage.py eval_erasure [--customer "Elodie Marchetti"] [--json]

Run it on a database of its own: it erases the customer for good. It makes sure the demo customers exist, then
plants the customer's values where the portal would put them: a conversation about them (messages with their
name and e-mail, a stored manifest, a vault holding their phone), a second conversation about them that a legal
hold on its owner keeps, another customer's conversation and notes quoting them, an organisation-wide memory,
a memory about them and a prediction. It prints the rows holding a value before (the baseline, the record
itself left out) and, after the erasure request has run through the same service and task as from the screen,
every table checked with its count and `values_found_after_erasure`.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

OFFICER = "eval-erasure-officer"
STAFF = "eval-erasure-staff"


class Command(BaseCommand):
    help = "Erase a demo customer and verify that no table holds their values (own database!)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customer", default="Tomasz Wieczorek", help="name of the demo customer to erase")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from portal.celery import app
        from portal.customers.models import Customer
        from portal.subjects.models import RequestStatus
        from portal.subjects.scan import count_rows_with_values
        from portal.subjects.selectors import customer_values
        from portal.subjects.services import subject_request_create

        officer, staff = _people()
        customer = Customer.objects.filter(name=options["customer"]).order_by("pk").first()
        if customer is None:
            from portal.customers.demo import demo_customers_ensure

            demo_customers_ensure()
            customer = Customer.objects.filter(name=options["customer"]).order_by("pk").first()
        if customer is None:
            raise CommandError(f"No customer named {options['customer']!r}.")
        planted = _plant(customer, officer=officer, staff=staff)
        values = customer_values(customer.pk)
        before = count_rows_with_values(values, exclude={Customer._meta.db_table: [customer.pk]})
        previous = app.conf.task_always_eager
        app.conf.task_always_eager = True  # the task runs here, after the request's commit, as a worker would
        try:
            request = subject_request_create(actor=officer, kind="erasure", subject_type="customer",
                                             subject_id=customer.pk, reason="eval_erasure")  # fmt: skip
        finally:
            app.conf.task_always_eager = previous
        request.refresh_from_db()
        if request.status != RequestStatus.DONE:
            raise CommandError(f"The erasure request #{request.pk} ended {request.status}: {request.error}")
        tables: dict[str, int] = request.verification["tables"]
        figures = {
            "customer_id": customer.pk,
            "request_id": request.pk,
            "values_searched": len(values),
            "tables_checked": request.verification["tables_checked"],
            "planted": planted,
            "values_found_before_erasure": sum(before.values()),
            "rows_with_values_before": {table: n for table, n in sorted(before.items()) if n},
            "phases": request.counts,
            "documents_for_review": len(request.documents_for_review),
            "values_found_after_erasure": request.values_found,
            "tables": dict(sorted(tables.items())),
        }
        if options["json"]:
            self.stdout.write(json.dumps(figures, indent=2))
            return
        self.stdout.write(f"erasure request #{request.pk} of customer #{customer.pk}: {len(values)} values searched "
                          f"in {figures['tables_checked']} tables")  # fmt: skip
        self.stdout.write(f"values_found_before_erasure: {figures['values_found_before_erasure']}")
        for table, count in figures["rows_with_values_before"].items():
            self.stdout.write(f"  before  {table}: {count}")
        for step in request.counts:
            shown = {key: value for key, value in step["counts"].items() if key != "rows_with_values_before"}
            self.stdout.write(f"phase {step['phase']}: {json.dumps(shown, sort_keys=True)}")
        for table, count in sorted(tables.items()):
            self.stdout.write(f"  after  {table}: {count}")
        self.stdout.write(f"documents_for_review: {figures['documents_for_review']}")
        self.stdout.write(f"values_found_after_erasure: {request.values_found}")


def _people() -> tuple[Any, Any]:
    from django.contrib.auth.models import Group, User

    officer, _ = User.objects.get_or_create(username=OFFICER, defaults={"first_name": "Eval", "last_name": "Officer"})
    officer.groups.add(Group.objects.get(name="Governance officer"))
    staff, _ = User.objects.get_or_create(username=STAFF, defaults={"first_name": "Eval", "last_name": "Staff"})
    staff.groups.add(Group.objects.get(name="Staff"))
    return User.objects.get(pk=officer.pk), User.objects.get(pk=staff.pk)


@transaction.atomic
def _plant(customer: Any, *, officer: Any, staff: Any) -> dict[str, int]:
    """Put the customer's values where the portal keeps them (rows made directly: this is a fixture)."""
    from governance.vault import vault_open, vault_save
    from portal.assistant.models import AssistantProfile, Conversation, Message
    from portal.customers.models import Customer, Interaction
    from portal.memory.models import MemoryItem
    from portal.ml.models import CustomerPrediction, ModelVersion
    from portal.retention.models import LegalHold

    name, email = customer.name, (customer.emails or ["nobody@example.invalid"])[0]
    phone = (customer.phones or ["0000 000 000"])[0]
    profile, _ = AssistantProfile.objects.get_or_create(name="Eval erasure", defaults={"instructions": "x"})
    about = Conversation.objects.create(owner=staff, profile=profile, title=f"Call with {name}", customer=customer)
    Message.objects.create(conversation=about, role="user", content=f"Draft a reply to {name} <{email}>.")
    Message.objects.create(conversation=about, role="assistant", content=f"Dear {name}, thank you for your call.",
                           manifest={"egress": {"values": [name, email]}})  # fmt: skip
    vault = vault_open(conversation_key=f"assistant-conversation-{about.pk}")
    vault.placeholder("PHONE", phone)
    vault.placeholder("PERSON", name)
    vault_save(vault=vault)
    # kept: a legal hold on its owner keeps this conversation, so the erasure scrubs it instead
    holder, _ = type(staff).objects.get_or_create(username="eval-erasure-held")
    kept = Conversation.objects.create(owner=holder, profile=profile, title="Dispute file", customer=customer)
    Message.objects.create(conversation=kept, role="user", content=f"Summarise the dispute with {name}, {phone}.")
    LegalHold.objects.get_or_create(
        subject="user",
        subject_id=holder.pk,
        lifted_at=None,
        defaults={"reason": "eval: litigation about another matter", "placed_by": officer},
    )
    other = Customer.objects.exclude(pk=customer.pk).order_by("pk").first() or Customer.objects.create(name="Other")
    Customer.objects.filter(pk=other.pk).update(notes=f"{other.notes} Referred by {name} ({email}).")
    Interaction.objects.create(customer=other, channel="email", occurred_at=customer.created_at,
                               summary=f"Mentioned {name}", full_text=f"Call {phone} for a reference.")  # fmt: skip
    theirs = Conversation.objects.create(owner=staff, profile=profile, title="Reference check", customer=other)
    Message.objects.create(conversation=theirs, role="user", content=f"Is {email} still the right contact?")
    MemoryItem.objects.create(text=f"{name} prefers calls on {phone}.", scope="customer", scope_customer=customer,
                              status="active", author=staff)  # fmt: skip
    MemoryItem.objects.create(text=f"Ask {name} before changing northern delivery slots.", scope="organisation",
                              status="active", author=staff)  # fmt: skip
    version = ModelVersion.objects.filter(purpose="customer_churn").order_by("-pk").first()
    if version is None:
        version = ModelVersion.objects.create(purpose="customer_churn", version=1, file_name="eval.skops", sha256="0")
    CustomerPrediction.objects.update_or_create(customer=customer, purpose="customer_churn",
                                                defaults={"model_version": version, "label": "at_risk",
                                                          "probability": 0.7, "reasons": []})  # fmt: skip
    return {"conversations_about_them": 2, "other_customers_rows": 3, "memories": 2, "vault_entries": 2,
            "predictions": 1}  # fmt: skip
