from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from audit.models import AuditEvent, Outcome
from portal.customers import csv_io
from portal.customers.csv_io import interactions_import
from portal.customers.models import Interaction
from portal.customers.selectors import ERROR_NO_CUSTOMER_CHANGE
from tests.accounts.factories import UserFactory
from tests.customers.factories import CustomerFactory, InteractionFactory

pytestmark = pytest.mark.django_db

HEADER = "customer_id,customer_email,channel,time,staff,summary,full_text,source\n"


def _client_for(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def _csv(*lines: str) -> bytes:
    return (HEADER + "".join(f"{line}\n" for line in lines)).encode()


def _reasons(report: csv_io.ImportReport) -> dict[int, str]:
    return {problem.line: problem.reason for problem in report.problems}


@pytest.fixture
def elodie(db: None) -> Any:
    return CustomerFactory.create(name="Elodie Durand", emails=["elodie@durand.example"])


def test_good_rows_are_imported_and_each_bad_row_is_reported_with_its_line(
    sam: Any, elodie: Any, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    data = _csv(
        f'{elodie.pk},,Phone call,2026-03-02 10:30,sam,Called about the invoice,"Long\nconversation",crm',  # 2-3
        ",Elodie@Durand.example,email,2026-03-03T09:00+00:00,,'=SUM(A1) in the quote,,crm",  # 4
        ",,email,2026-03-04,,No customer,,",
        "abc,,email,2026-03-04,,Bad id,,",
        "999999,,email,2026-03-04,,Unknown id,,",
        ",nobody@nowhere.example,email,2026-03-04,,Unknown e-mail,,",
        f"{elodie.pk},,fax,2026-03-04,,Bad channel,,",
        f"{elodie.pk},,email,02/03/2026,,Bad time,,",
        f"{elodie.pk},,email,2026-03-04,nosuchuser,Bad staff,,",
        f"{elodie.pk},,email,2026-03-04,,,,",
        f"{elodie.pk},,email,2026-03-04,,Too,many,fields,here",
        f'{elodie.pk},,phone call,2026-03-02 10:30,sam,Called about the invoice,"Long\nconversation",crm',  # 14-15
        f"{elodie.pk},,email,2026-03-04,,{'x' * 301},,",
        f"{elodie.pk},,email,,,No time,,",
        f"{elodie.pk},,,2026-03-04,,No channel,,",
        f"{elodie.pk},someone@else.example,email,2026-03-04,,Wrong e-mail,,",
        f"{elodie.pk},,Meeting,2026-03-05,,Visited the bakery,,",
    )
    report = interactions_import(actor=sam, data=data, filename="history.csv")

    assert report.ok and report.ignored_columns == ["source"]
    choices = ", ".join(["email", "phone", "meeting", "chat", "letter", "other"])
    assert _reasons(report) == {
        5: csv_io.ROW_ERROR_CUSTOMER_MISSING,
        6: csv_io.ROW_ERROR_CUSTOMER_ID.format(value="abc"),
        7: csv_io.ROW_ERROR_CUSTOMER_NOT_FOUND.format(value=999999),
        8: csv_io.ROW_ERROR_CUSTOMER_EMAIL_NOT_FOUND.format(value="nobody@nowhere.example"),
        9: csv_io.ROW_ERROR_CHANNEL.format(value="fax", choices=choices),
        10: csv_io.ROW_ERROR_TIME.format(value="02/03/2026"),
        11: csv_io.ROW_ERROR_STAFF.format(value="nosuchuser"),
        12: csv_io.ROW_ERROR_SUMMARY_MISSING,
        13: csv_io.ROW_ERROR_FIELD_COUNT.format(found=9, expected=8),
        14: csv_io.ROW_ERROR_INTERACTION_DUPLICATE_IN_FILE.format(line=2),
        16: "summary: Ensure this value has at most 300 characters (it has 301).",
        17: csv_io.ROW_ERROR_TIME_MISSING,
        18: csv_io.ROW_ERROR_CHANNEL_MISSING.format(choices=choices),
        19: csv_io.ROW_ERROR_CUSTOMER_EMAIL_MISMATCH.format(customer_id=elodie.pk, value="someone@else.example"),
    }
    assert report.rows_read == 17 and report.imported == 3

    call, quote, visit = Interaction.objects.order_by("occurred_at")
    assert call.customer == elodie and call.channel == "phone" and call.staff == sam
    assert call.occurred_at == dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)  # naive: Paris time (UTC+1)
    assert call.full_text == "Long\nconversation"
    assert quote.summary == "=SUM(A1) in the quote"  # the export's formula guard is undone
    assert quote.occurred_at == dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC) and quote.staff is None
    assert visit.channel == "meeting" and visit.occurred_at == dt.datetime(2026, 3, 4, 23, 0, tzinfo=dt.UTC)

    event = AuditEvent.objects.get(action="customers.interactions_imported")
    assert event.actor_id == sam.pk and event.outcome == Outcome.SUCCESS
    assert event.object_type == "customers.interaction"
    assert sorted(event.details["created_ids"]) == sorted([call.pk, quote.pk, visit.pk])
    assert event.details["customer_ids"] == [elodie.pk] and event.details["channels"] == ["email", "meeting", "phone"]
    assert event.details["rejected_lines"] == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19]
    assert "invoice" not in str(event.details)  # the trail names records, not what was said


def test_a_customer_the_user_may_not_see_is_reported_like_a_missing_one(sam: Any, alice: Any) -> None:
    hidden = CustomerFactory.create(restricted=True, emails=["secret@hidden.example"])
    missing_id = hidden.pk + 1000
    data = _csv(
        f"{hidden.pk},,email,2026-03-04,,Hidden by id,,",
        ",secret@hidden.example,email,2026-03-04,,Hidden by e-mail,,",
        f"{missing_id},,email,2026-03-04,,Missing,,",
    )
    report = interactions_import(actor=sam, data=data, filename="x.csv")
    assert _reasons(report) == {
        2: csv_io.ROW_ERROR_CUSTOMER_NOT_FOUND.format(value=hidden.pk),
        3: csv_io.ROW_ERROR_CUSTOMER_EMAIL_NOT_FOUND.format(value="secret@hidden.example"),
        4: csv_io.ROW_ERROR_CUSTOMER_NOT_FOUND.format(value=missing_id),
    }
    assert report.imported == 0 and not Interaction.objects.exists()
    # someone who may see every record imports the same rows
    assert interactions_import(actor=alice, data=data, filename="x.csv").imported == 2


def test_an_email_shared_by_several_visible_customers_needs_the_id(sam: Any) -> None:
    first = CustomerFactory.create(emails=["office@shared.example"])
    second = CustomerFactory.create(emails=["office@shared.example"])
    CustomerFactory.create(restricted=True, emails=["office@shared.example"])  # hidden: neither counted nor named
    report = interactions_import(
        actor=sam, data=_csv(",office@shared.example,email,2026-03-04,,Which one?,,"), filename="x.csv"
    )
    assert _reasons(report) == {
        2: csv_io.ROW_ERROR_CUSTOMER_EMAIL_AMBIGUOUS.format(
            value="office@shared.example", ids=f"#{first.pk}, #{second.pk}"
        )
    }


def test_importing_the_same_file_again_skips_what_is_already_recorded(sam: Any, elodie: Any) -> None:
    data = _csv(f"{elodie.pk},,email,2026-03-04T10:00,,Sent the quote,,", f"{elodie.pk},,email,2026-03-05,,,,")
    assert interactions_import(actor=sam, data=data, filename="x.csv").imported == 1
    recorded = Interaction.objects.get()
    again = interactions_import(actor=sam, data=data, filename="x.csv")
    assert again.imported == 0
    assert _reasons(again)[2] == csv_io.ROW_ERROR_INTERACTION_EXISTS.format(interaction_id=recorded.pk)
    assert Interaction.objects.count() == 1


def test_semicolons_a_bom_and_other_column_names_are_understood(sam: Any, elodie: Any) -> None:
    data = (
        "\ufeffCustomer E-mail;Channel;Date;Subject;Body;Username\n"
        "elodie@durand.example;Letter;2026-01-15;Sent the contract;Signed copy enclosed.;SAM\n"
    )
    report = interactions_import(actor=sam, data=data.encode(), filename="x.csv")
    assert report.imported == 1, report.problems
    interaction = Interaction.objects.get()
    assert interaction.channel == "letter" and interaction.full_text == "Signed copy enclosed."
    assert interaction.staff == sam


def test_the_import_is_all_or_nothing_when_the_database_fails(
    sam: Any, elodie: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_bulk_create(objects: Any, **kwargs: Any) -> Any:
        InteractionFactory.create(customer=elodie, summary="written before the failure")
        raise DatabaseError("disk full")

    monkeypatch.setattr(Interaction.objects, "bulk_create", failing_bulk_create)
    data = _csv(f"{elodie.pk},,email,2026-03-04,,One,,", f"{elodie.pk},,email,2026-03-05,,Two,,")
    report = interactions_import(actor=sam, data=data, filename="x.csv")
    assert not report.ok and report.imported == 0
    assert report.file_error == csv_io.ERROR_DATABASE.format(problem="DatabaseError")
    assert not Interaction.objects.exists()
    event = AuditEvent.objects.get(action="customers.interactions_imported")
    assert event.outcome == Outcome.FAILURE and event.details["created_ids"] == []
    assert event.details["customer_ids"] == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", csv_io.ERROR_EMPTY_FILE),
        (b"PK\x03\x04rest-of-a-workbook", csv_io.ERROR_SPREADSHEET),
        (b"customer_id,channel,summary\n1,email,Hello\n", csv_io.ERROR_INTERACTION_COLUMNS.format(missing="time")),
        (
            b"name,channel,time,summary\nAna,email,2026-03-04,Hello\n",
            csv_io.ERROR_INTERACTION_COLUMNS.format(missing="customer_id or customer_email"),
        ),
    ],
)
def test_file_problems_import_nothing_and_are_audited(sam: Any, elodie: Any, data: bytes, message: str) -> None:
    report = interactions_import(actor=sam, data=data, filename="x.csv")
    assert report.file_error == message and report.imported == 0
    assert not Interaction.objects.exists()
    assert AuditEvent.objects.get(action="customers.interactions_imported").outcome == Outcome.FAILURE


def test_a_role_that_may_see_but_not_change_customers_may_not_import(elodie: Any) -> None:
    reader = UserFactory.create(username="reader")
    reader.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="customers", codename__in=["view_customer", "add_interaction"]
        )
    )
    data = _csv(f"{elodie.pk},,email,2026-03-04,,Hello,,")
    with pytest.raises(PermissionDenied, match=ERROR_NO_CUSTOMER_CHANGE):
        interactions_import(actor=reader, data=data, filename="x.csv")
    client = _client_for(reader)
    assert client.get(reverse("customers:interaction_import")).status_code == 403
    upload = SimpleUploadedFile("x.csv", data, content_type="text/csv")
    assert client.post(reverse("customers:interaction_import"), {"file": upload}).status_code == 403
    assert (
        reverse("customers:interaction_import") not in client.get(reverse("customers:customer_list")).content.decode()
    )
    assert not Interaction.objects.exists()


@pytest.mark.parametrize("person", ["audrey", "oscar"])
def test_roles_without_customer_access_get_403(person: str, request: pytest.FixtureRequest) -> None:
    client = _client_for(request.getfixturevalue(person))
    assert client.get(reverse("customers:interaction_import")).status_code == 403


def test_the_page_is_linked_from_the_list_renders_and_posts_with_csrf(sam: Any, elodie: Any) -> None:
    client = _client_for(sam, enforce_csrf_checks=True)
    url = reverse("customers:interaction_import")
    assert url in client.get(reverse("customers:customer_list")).content.decode()
    page = client.get(url)
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    data = _csv(f"{elodie.pk},,email,2026-03-04,,Hello,,", f"{elodie.pk},,fax,2026-03-04,,Bad channel,,")

    refused = client.post(url, {"file": SimpleUploadedFile("x.csv", data)})
    assert refused.status_code == 403 and not Interaction.objects.exists()

    response = client.post(url, {"file": SimpleUploadedFile("x.csv", data), "csrfmiddlewaretoken": token.group(1)})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<strong>1</strong> of 2 rows imported" in body and "<td>3</td>" in body
    assert "Columns ignored or merged:" in body and "column &#x27;source&#x27; is not a field the import knows" in body
    assert Interaction.objects.get().summary == "Hello"

    bad = client.post(
        url, {"file": SimpleUploadedFile("x.xlsx", b"PK\x03\x04..."), "csrfmiddlewaretoken": token.group(1)}
    )
    assert bad.status_code == 400 and escape(csv_io.ERROR_SPREADSHEET) in bad.content.decode()
    assert client.post(url, {"csrfmiddlewaretoken": token.group(1)}).status_code == 400  # no file
