from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from audit.models import AuditEvent
from portal.customers import csv_io
from portal.customers.csv_io import customers_import
from portal.customers.models import Customer
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db

GOOD_AND_BAD = (
    "name,organisation,emails,phones,account_numbers,tier,owner\n"
    "Elodie Durand,Durand Bakery,elodie@durand.example,+33 1 42 68 53 00,FR14 2004 1010 0505 0001 3M02 606,key,sam\n"
    ",Nameless Ltd,nobody@nameless.example,,,standard,\n"
    "Marcus Webb,Webb Logistics,not-an-email,,,standard,\n"
    '"Priya Natarajan","Natarajan &\nSons",priya@natarajan.example;p.n@natarajan.example,,,gold,\n'
    "Jonas Berg,Berg AB,elodie@durand.example,,,standard,\n"
    "Ana Lima,Lima Lda,ana@lima.example,,,priority,nosuchuser\n"
    "Too,Many,Fields,Here,x,y,z,w\n"
    "Chen Wei,Wei Imports,chen@wei.example,+44 20 7946 0018,GB82 WEST 1234 5698 7654 32,standard,\n"
)


def _client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_good_rows_are_imported_and_bad_rows_reported_with_line_and_reason(alice: Any, sam: Any) -> None:
    report = customers_import(actor=alice, data=GOOD_AND_BAD.encode(), filename="people.csv")
    assert report.ok
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["Chen Wei", "Elodie Durand"]
    reasons = {problem.line: problem.reason for problem in report.problems}
    assert reasons[3] == csv_io.ROW_ERROR_NAME_MISSING
    assert "'not-an-email' is not an e-mail address" in reasons[4]
    assert "unknown tier 'gold'" in reasons[5]  # the quoted field spans lines 5-6: the row starts on line 5
    assert reasons[7] == csv_io.ROW_ERROR_DUPLICATE_IN_FILE.format(value="elodie@durand.example", line=2)
    assert reasons[8] == csv_io.ROW_ERROR_OWNER.format(value="nosuchuser")
    assert reasons[9] == csv_io.ROW_ERROR_FIELD_COUNT.format(found=8, expected=7)
    assert report.rows_read == 8 and report.imported == 2
    elodie = Customer.objects.get(name="Elodie Durand")
    assert elodie.owner == sam and elodie.tier == "key" and elodie.phones == ["+33 1 42 68 53 00"]
    event = AuditEvent.objects.filter(action="customers.customers_imported").latest("seq")
    assert event.details["imported"] == 2 and event.details["rejected_lines"] == [3, 4, 5, 7, 8, 9]


def test_rows_clashing_with_existing_customers_are_rejected(alice: Any) -> None:
    existing = CustomerFactory.create(emails=["chen@wei.example"])
    report = customers_import(
        actor=alice, data=b"name,email\nChen Wei,Chen@Wei.example\nAna Lima,ana@lima.example\n", filename="x.csv"
    )
    assert [p.reason for p in report.problems] == [
        csv_io.ROW_ERROR_DUPLICATE_EXISTING.format(value="chen@wei.example", customer_id=existing.pk)
    ]
    assert report.imported == 1


def test_the_import_is_all_or_nothing_when_the_database_fails(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_bulk_create(objects: Any, **kwargs: Any) -> Any:
        Customer.objects.create(name="written before the failure")
        raise DatabaseError("disk full")

    monkeypatch.setattr(Customer.objects, "bulk_create", failing_bulk_create)
    report = customers_import(actor=alice, data=b"name\nAna Lima\nChen Wei\n", filename="x.csv")
    assert not report.ok and report.imported == 0
    assert report.file_error == csv_io.ERROR_DATABASE.format(problem="DatabaseError")
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", csv_io.ERROR_EMPTY_FILE),
        ("name\nJos\xe9 Garc\xeda\n".encode("latin-1"), csv_io.ERROR_ENCODING.format(position=8)),
        (b"PK\x03\x04rest-of-a-workbook", csv_io.ERROR_SPREADSHEET),
        (b"name\x00\x01\x02", csv_io.ERROR_BINARY),
        (b"organisation,email\nAcme,a@acme.example\n", csv_io.ERROR_NO_NAME_COLUMN),
        (b'name,notes\nAna Lima,"never closed\n', None),
    ],
)
def test_file_problems_import_nothing_and_say_why(alice: Any, data: bytes, message: str | None) -> None:
    report = customers_import(actor=alice, data=data, filename="x.csv")
    assert not report.ok
    if message is not None:
        assert report.file_error == message
    else:
        assert report.file_error.startswith("The file is not valid CSV")
    assert not Customer.objects.exists()


def test_a_file_over_the_size_limit_is_refused(alice: Any, settings: Any) -> None:
    settings.CUSTOMERS_IMPORT_MAX_BYTES = 100
    report = customers_import(actor=alice, data=b"name\n" + b"Ana Lima\n" * 20, filename="x.csv")
    assert report.file_error == csv_io.ERROR_TOO_LARGE.format(limit=100)


def test_semicolon_separated_files_and_a_utf8_bom_are_understood(alice: Any) -> None:
    data = "\ufeffName;E-mail;Phone\nJosé García;jose@garcia.example|j.g@garcia.example;+34 912 345 678\n".encode()
    report = customers_import(actor=alice, data=data, filename="x.csv")
    assert report.imported == 1, report.problems
    customer = Customer.objects.get()
    assert customer.name == "José García" and customer.emails == ["jose@garcia.example", "j.g@garcia.example"]


def test_the_import_page_shows_the_report_and_refuses_staff(alice: Any, sam: Any) -> None:
    upload = SimpleUploadedFile("people.csv", GOOD_AND_BAD.encode(), content_type="text/csv")
    response = _client_for(alice).post(reverse("customers:customer_import"), {"file": upload})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<strong>2</strong> of 8 rows imported" in body and "<td>9</td>" in body
    assert _client_for(sam).get(reverse("customers:customer_import")).status_code == 403
    bad = _client_for(alice).post(
        reverse("customers:customer_import"), {"file": SimpleUploadedFile("x.xlsx", b"PK\x03\x04...")}
    )
    assert bad.status_code == 400 and escape(csv_io.ERROR_SPREADSHEET) in bad.content.decode()


def test_the_export_is_safe_in_spreadsheets_and_imports_back_unchanged(alice: Any, sam: Any) -> None:
    CustomerFactory.create(
        name='=HYPERLINK("http://evil.example")',
        notes="@SUM(1+1)",
        emails=["evil@example.test"],
        phones=["+44 20 7946 0000"],
    )
    CustomerFactory.create(name="Elodie Durand", account_numbers=["FR14 2004 1010 0505 0001 3M02 606"], owner=sam)
    response = _client_for(alice).get(reverse("customers:customer_export"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(text)))
    hostile = next(row for row in rows if "HYPERLINK" in row["name"])
    assert hostile["name"].startswith("'=") and hostile["notes"].startswith("'@") and hostile["phones"].startswith("'+")
    before = sorted(Customer.objects.values_list("name", "phones", "account_numbers", "notes", "owner"))
    Customer.objects.all().delete()
    report = customers_import(actor=alice, data=text.encode(), filename="export.csv")
    assert report.imported == 2 and report.ignored_columns == ["id"]
    assert sorted(Customer.objects.values_list("name", "phones", "account_numbers", "notes", "owner")) == before
    assert AuditEvent.objects.filter(action="customers.customers_exported").latest("seq").details["count"] == 2


def test_staff_may_not_export(sam: Any) -> None:
    assert _client_for(sam).get(reverse("customers:customer_export")).status_code == 403


def test_columns_feeding_the_same_field_are_merged_or_ignored_and_the_report_says_which(alice: Any) -> None:
    data = (
        "name,full name,account,iban,email,e-mail,notes,note,source\n"
        "Amara Okafor,A. Okafor,ACC-0048151623,GB82 WEST 1234 5698 7654 32,amara@okafor.example,"
        "a.okafor@work.example,first note,second note,fair\n"
    )
    report = customers_import(actor=alice, data=data.encode(), filename="merge.csv")
    assert report.ok and report.imported == 1
    amara = Customer.objects.get()
    # two columns mapping to account_numbers: both values kept (it used to keep only the last)
    assert amara.account_numbers == ["ACC-0048151623", "GB82 WEST 1234 5698 7654 32"]
    assert amara.emails == ["amara@okafor.example", "a.okafor@work.example"]
    assert amara.notes == "first note\nsecond note"
    assert amara.name == "Amara Okafor"  # the first name column is used
    assert report.ignored_columns == ["full name", "source"]
    assert report.merged_columns == ["iban", "e-mail", "note"]
    assert report.column_notes == [
        csv_io.NOTE_DUPLICATE.format(title="full name", field="name", first="name"),
        csv_io.NOTE_MERGED.format(title="iban", first="account", field="account numbers"),
        csv_io.NOTE_MERGED.format(title="e-mail", first="email", field="emails"),
        csv_io.NOTE_MERGED.format(title="note", first="notes", field="notes"),
        csv_io.NOTE_IGNORED.format(title="source"),
    ]


def test_the_import_page_lists_every_ignored_or_merged_column(alice: Any) -> None:
    client = _client_for(alice)
    data = b"name,account,iban\nAmara Okafor,ACC-1,ACC-2\n"
    response = client.post(reverse("customers:customer_import"), {"file": SimpleUploadedFile("m.csv", data)})
    body = response.content.decode()
    assert response.status_code == 200
    assert escape(csv_io.NOTE_MERGED.format(title="iban", first="account", field="account numbers")) in body
