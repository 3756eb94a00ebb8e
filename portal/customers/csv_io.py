"""CSV import (with a validation report) and export (safe to open in a spreadsheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.http import HttpRequest

from audit.exports import FORMULA_PREFIXES, neutralise_cell
from audit.models import Outcome
from audit.services import audit
from portal.customers.entities import known_entities_invalidate_on_commit
from portal.customers.models import Customer, Tier
from portal.customers.selectors import customers_visible_to
from portal.customers.services import EDITABLE_FIELDS
from portal.customers.validation import clean_account_numbers, clean_emails, clean_phones, split_values

ERROR_IMPORT_PERMISSION = "Your role may not import customers."
ERROR_EXPORT_PERMISSION = "Your role may not export customers."
ERROR_EMPTY_FILE = "The file is empty."
ERROR_TOO_LARGE = "The file is larger than the import limit of {limit:,} bytes. Split it into smaller files."
ERROR_SPREADSHEET = "This is a spreadsheet workbook, not a CSV file. Save it as 'CSV UTF-8' and upload that."
ERROR_BINARY = "This is not a text file (it contains NUL bytes). Upload a CSV file."
ERROR_ENCODING = (
    "The file is not UTF-8 text (the first invalid byte is at position {position}). "
    "Save it as 'CSV UTF-8' and upload it again."
)
ERROR_CSV_SYNTAX = "The file is not valid CSV near line {line}: {problem}."
ERROR_NO_NAME_COLUMN = "The first line must be a header naming the columns, with at least a 'name' column."
ERROR_TOO_MANY_ROWS = "The file has more than {limit:,} rows; split it into smaller files."
ERROR_DATABASE = "Nothing was imported: the database refused the import ({problem})."
ROW_ERROR_FIELD_COUNT = "has {found} fields but the header has {expected}"
ROW_ERROR_NAME_MISSING = "the name is empty"
ROW_ERROR_TIER = "unknown tier {value!r} (use one of: {choices})"
ROW_ERROR_OWNER = "no user named {value!r}"
ROW_ERROR_DUPLICATE_IN_FILE = "e-mail {value!r} already appears on line {line}"
ROW_ERROR_DUPLICATE_EXISTING = "e-mail {value!r} already belongs to customer #{customer_id}"
ROW_ERROR_RESTRICTED = "the restricted column must be yes/no, true/false or 1/0, not {value!r}"

UserLike = User | AnonymousUser

COLUMN_ALIASES = {
    "name": "name",
    "full name": "name",
    "customer": "name",
    "organisation": "organisation",
    "organization": "organisation",
    "company": "organisation",
    "email": "emails",
    "emails": "emails",
    "e-mail": "emails",
    "e-mails": "emails",
    "phone": "phones",
    "phones": "phones",
    "telephone": "phones",
    "postal_address": "postal_address",
    "postal address": "postal_address",
    "address": "postal_address",
    "account_numbers": "account_numbers",
    "account numbers": "account_numbers",
    "account number": "account_numbers",
    "account": "account_numbers",
    "iban": "account_numbers",
    "tier": "tier",
    "notes": "notes",
    "note": "notes",
    "owner": "owner",
    "restricted": "restricted",
}
EXPORT_COLUMNS = ["id", *EDITABLE_FIELDS]
TRUE_WORDS = {"1", "yes", "true", "y", "x"}
FALSE_WORDS = {"0", "no", "false", "n", ""}


@dataclass(frozen=True)
class RowProblem:
    line: int  # line of the file where the row starts (the header is line 1)
    reason: str


@dataclass
class ImportReport:
    filename: str
    rows_read: int = 0
    created_ids: list[int] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    file_error: str = ""

    @property
    def imported(self) -> int:
        return len(self.created_ids)

    @property
    def ok(self) -> bool:
        return not self.file_error


class FileProblem(Exception):
    pass


def _decode(data: bytes) -> str:
    if not data.strip():
        raise FileProblem(ERROR_EMPTY_FILE)
    limit = settings.CUSTOMERS_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise FileProblem(ERROR_TOO_LARGE.format(limit=limit))
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileProblem(ERROR_SPREADSHEET)
    if b"\x00" in data:
        raise FileProblem(ERROR_BINARY)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FileProblem(ERROR_ENCODING.format(position=error.start)) from error


def _unescape(value: str) -> str:
    """Undo the export's formula guard, so an exported file imports back unchanged."""
    value = value.strip()
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_PREFIXES:
        return value[1:]
    return value


def _rows(text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]], str]:
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration as error:
        raise FileProblem(ERROR_EMPTY_FILE) from error
    except csv.Error as error:
        raise FileProblem(ERROR_CSV_SYNTAX.format(line=reader.line_num, problem=error)) from error

    def body() -> Iterator[tuple[int, list[str]]]:
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise FileProblem(ERROR_CSV_SYNTAX.format(line=reader.line_num, problem=error)) from error
            yield start, row
            start = reader.line_num + 1

    return header, body(), delimiter


def _bool(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationError(ROW_ERROR_RESTRICTED.format(value=value))


def _message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{name.replace('_', ' ')}: {' '.join(str(m) for m in messages)}"
            for name, messages in error.message_dict.items()
        )
    return " ".join(str(message) for message in error.messages)


def _parse_row(values: dict[str, str], *, owners: dict[str, User], multi_separator: Any) -> Customer:
    name = values.get("name", "")
    if not name:
        raise ValidationError(ROW_ERROR_NAME_MISSING)
    tier_value = values.get("tier", "").lower() or Tier.STANDARD
    tiers = {choice.value: choice.value for choice in Tier} | {choice.label.lower(): choice.value for choice in Tier}
    if tier_value not in tiers:
        raise ValidationError(ROW_ERROR_TIER.format(value=values["tier"], choices=", ".join(Tier.values)))
    owner = None
    if values.get("owner"):
        owner = owners.get(values["owner"].lower())
        if owner is None:
            raise ValidationError(ROW_ERROR_OWNER.format(value=values["owner"]))
    customer = Customer(
        name=name,
        organisation=values.get("organisation", ""),
        emails=clean_emails(split_values(values.get("emails", ""), multi_separator)),
        phones=clean_phones(split_values(values.get("phones", ""), multi_separator)),
        postal_address=values.get("postal_address", "").replace("\r\n", "\n"),
        account_numbers=clean_account_numbers(split_values(values.get("account_numbers", ""), multi_separator)),
        tier=tiers[tier_value],
        notes=values.get("notes", ""),
        owner=owner,
        restricted=_bool(values.get("restricted", "")),
    )
    customer.full_clean()
    return customer


def customers_import(
    *, actor: UserLike, data: bytes, filename: str, request: HttpRequest | None = None
) -> ImportReport:
    """Validate every row, then create all good rows in one transaction (all or nothing).

    Bad rows are reported with their line number and reason and are not imported. A problem with the file
    itself (size, encoding, CSV syntax, missing header) imports nothing.
    """
    import re

    if not actor.has_perm("customers.import_customer") or not actor.has_perm("customers.add_customer"):
        raise PermissionDenied(ERROR_IMPORT_PERMISSION)
    report = ImportReport(filename=filename[:200])
    good: list[tuple[int, Customer]] = []
    try:
        text = _decode(data)
        header, rows, delimiter = _rows(text)
        columns: list[str | None] = []
        for title in header:
            canonical = COLUMN_ALIASES.get(title.strip().lower().lstrip("\ufeff"))
            columns.append(canonical)
            if canonical is None and title.strip():
                report.ignored_columns.append(title.strip())
        if "name" not in columns:
            raise FileProblem(ERROR_NO_NAME_COLUMN)
        multi_separator = re.compile(r"[\n|]" if delimiter == ";" else r"[\n;|]")
        owners = {user.username.lower(): user for user in User.objects.filter(is_active=True)}
        seen_emails: dict[str, int] = {}
        for line, row in rows:
            if not any(cell.strip() for cell in row):
                continue
            report.rows_read += 1
            if report.rows_read > settings.CUSTOMERS_IMPORT_MAX_ROWS:
                raise FileProblem(ERROR_TOO_MANY_ROWS.format(limit=settings.CUSTOMERS_IMPORT_MAX_ROWS))
            if len(row) != len(header):
                report.problems.append(
                    RowProblem(line, ROW_ERROR_FIELD_COUNT.format(found=len(row), expected=len(header)))
                )
                continue
            values = {column: _unescape(cell) for column, cell in zip(columns, row, strict=True) if column}
            try:
                customer = _parse_row(values, owners=owners, multi_separator=multi_separator)
            except ValidationError as error:
                report.problems.append(RowProblem(line, _message(error)))
                continue
            duplicate = next((email for email in customer.emails if email.lower() in seen_emails), None)
            if duplicate:
                report.problems.append(
                    RowProblem(
                        line, ROW_ERROR_DUPLICATE_IN_FILE.format(value=duplicate, line=seen_emails[duplicate.lower()])
                    )
                )
                continue
            for email in customer.emails:
                seen_emails[email.lower()] = line
            good.append((line, customer))
    except FileProblem as problem:
        report.file_error = str(problem)
        report.problems.clear()
        good.clear()

    if good:
        taken = _existing_emails([email for _, customer in good for email in customer.emails])
        still_good = []
        for line, customer in good:
            clash = next((email for email in customer.emails if email.lower() in taken), None)
            if clash:
                report.problems.append(
                    RowProblem(line, ROW_ERROR_DUPLICATE_EXISTING.format(value=clash, customer_id=taken[clash.lower()]))
                )
            else:
                still_good.append(customer)
        report.problems.sort(key=lambda problem: problem.line)
        try:
            with transaction.atomic():
                created = Customer.objects.bulk_create(still_good)
                report.created_ids = [customer.pk for customer in created]
                _audit_import(actor=actor, report=report, request=request)
                known_entities_invalidate_on_commit()
        except DatabaseError as error:
            report.created_ids = []
            report.file_error = ERROR_DATABASE.format(problem=type(error).__name__)
    if not report.created_ids:
        with transaction.atomic():
            _audit_import(actor=actor, report=report, request=request)
    return report


def _existing_emails(emails: list[str]) -> dict[str, int]:
    if not emails:
        return {}
    lowered = {email.lower() for email in emails}
    taken: dict[str, int] = {}
    for pk, customer_emails in Customer.objects.filter(emails__overlap=sorted(lowered | set(emails))).values_list(
        "pk", "emails"
    ):
        for email in customer_emails:
            if email.lower() in lowered:
                taken.setdefault(email.lower(), pk)
    return taken


def _audit_import(*, actor: UserLike, report: ImportReport, request: HttpRequest | None) -> None:
    audit(
        actor=actor,
        action="customers.customers_imported",
        object_type="customers.customer",
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
        details={
            "filename": report.filename,
            "rows_read": report.rows_read,
            "imported": report.imported,
            "created_ids": report.created_ids[:5000],
            "rejected_lines": [problem.line for problem in report.problems][:5000],
            "file_error": report.file_error,
        },
        request=request,
    )


# ---- export -------------------------------------------------------------------------------------------
def _export_row(customer: Customer) -> list[str]:
    values = [
        str(customer.pk),
        customer.name,
        customer.organisation,
        "; ".join(customer.emails),
        "; ".join(customer.phones),
        customer.postal_address,
        "; ".join(customer.account_numbers),
        customer.tier,
        customer.notes,
        customer.owner.get_username() if customer.owner else "",
        "yes" if customer.restricted else "no",
    ]
    return [neutralise_cell(value) for value in values]


class _Echo:
    def write(self, value: str) -> str:
        return value


def customers_export(*, actor: UserLike, search: str = "", request: HttpRequest | None = None) -> Iterable[str]:
    """CSV lines of every customer the actor may see; the export itself is audited with the record ids."""
    if not actor.has_perm("customers.export_customer"):
        raise PermissionDenied(ERROR_EXPORT_PERMISSION)
    from portal.customers.selectors import customer_list

    customers = list(
        customer_list(user=actor, search=search)
        if search
        else customers_visible_to(user=actor).select_related("owner").order_by("name", "pk")
    )
    with transaction.atomic():
        audit(
            actor=actor,
            action="customers.customers_exported",
            object_type="customers.customer",
            details={
                "count": len(customers),
                "customer_ids": [c.pk for c in customers][:10000],
                "search": bool(search),
            },
            request=request,
        )
    writer = csv.writer(_Echo())
    lines = [writer.writerow(EXPORT_COLUMNS)]
    lines.extend(writer.writerow(_export_row(customer)) for customer in customers)
    return ["\ufeff" + lines[0], *lines[1:]]
