"""CSV import of customers and of their interactions (with a validation report), and the customer export
(safe to open in a spreadsheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.exports import FORMULA_PREFIXES, neutralise_cell
from audit.models import Outcome
from audit.privacy import text_fingerprint
from audit.services import audit
from portal.core.types import UserLike
from portal.customers.entities import known_entities_invalidate_on_commit
from portal.customers.models import Channel, Customer, Interaction, Tier
from portal.customers.selectors import customers_changeable_by, customers_visible_to
from portal.customers.services import EDITABLE_FIELDS, ERROR_ADD_INTERACTION
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

ERROR_INTERACTION_COLUMNS = (
    "The header has no {missing} column. It needs a customer_id or customer_email column, "
    "and channel, time and summary columns."
)
ROW_ERROR_CUSTOMER_MISSING = "no customer given (fill in the customer id or the customer e-mail)"
ROW_ERROR_CUSTOMER_ID = "the customer id {value!r} is not a number"
# The same words for a customer that does not exist and one the importing user may not see or change,
# so the report does not tell which records exist.
ROW_ERROR_CUSTOMER_NOT_FOUND = "no customer #{value}"
ROW_ERROR_CUSTOMER_EMAIL_NOT_FOUND = "no customer with the e-mail {value!r}"
ROW_ERROR_CUSTOMER_EMAIL_AMBIGUOUS = "the e-mail {value!r} belongs to customers {ids}; give the customer id instead"
ROW_ERROR_CUSTOMER_EMAIL_MISMATCH = "customer #{customer_id} has no e-mail {value!r}"
ROW_ERROR_CHANNEL_MISSING = "the channel is empty (use one of: {choices})"
ROW_ERROR_CHANNEL = "unknown channel {value!r} (use one of: {choices})"
ROW_ERROR_TIME_MISSING = "the time is empty"
ROW_ERROR_TIME = (
    "the time {value!r} is not an ISO 8601 date or date and time (for example 2026-03-02, 2026-03-02 14:30 "
    "or 2026-03-02T14:30+01:00)"
)
ROW_ERROR_STAFF = "no user named {value!r}"
ROW_ERROR_SUMMARY_MISSING = "the summary is empty"
ROW_ERROR_INTERACTION_DUPLICATE_IN_FILE = "the same interaction is already on line {line}"
ROW_ERROR_INTERACTION_EXISTS = "this interaction is already recorded (interaction #{interaction_id})"


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
INTERACTION_COLUMN_ALIASES = {
    "customer_id": "customer_id",
    "customer id": "customer_id",
    "customer number": "customer_id",
    "customer_email": "customer_email",
    "customer email": "customer_email",
    "customer e-mail": "customer_email",
    "email": "customer_email",
    "e-mail": "customer_email",
    "channel": "channel",
    "medium": "channel",
    "via": "channel",
    "occurred_at": "occurred_at",
    "occurred at": "occurred_at",
    "time": "occurred_at",
    "date": "occurred_at",
    "when": "occurred_at",
    "datetime": "occurred_at",
    "timestamp": "occurred_at",
    "staff": "staff",
    "staff member": "staff",
    "staff_member": "staff",
    "user": "staff",
    "username": "staff",
    "summary": "summary",
    "subject": "summary",
    "full_text": "full_text",
    "full text": "full_text",
    "text": "full_text",
    "body": "full_text",
    "message": "full_text",
}
# channel values and labels, lower-cased ("email", "e-mail", "phone", "phone call", ...)
CHANNELS = {choice.value: choice.value for choice in Channel} | {
    choice.label.lower(): choice.value for choice in Channel
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
    merged_columns: list[str] = field(default_factory=list)
    column_notes: list[str] = field(default_factory=list)  # one sentence per ignored or merged column
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


# Several columns may feed a field that holds several values (their values are merged) or the notes (joined
# line by line); for any other field the first such column is used and the others are ignored. Either way
# the report says so: nothing in a file is dropped silently.
MERGED_FIELDS = frozenset({"emails", "phones", "account_numbers", "notes", "full_text"})
NOTE_IGNORED = "column {title!r} is not a field the import knows; ignored"
NOTE_DUPLICATE = "column {title!r} is a second {field} column; ignored (column {first!r} is used)"
NOTE_MERGED = "column {title!r} is merged with column {first!r} into {field}"


def _map_columns(header: list[str], aliases: Mapping[str, str], report: ImportReport) -> list[str | None]:
    """The canonical name of each header column (None for columns the import ignores). Every column that is
    ignored or merged into another one is listed in the report with the reason."""
    columns: list[str | None] = []
    first_title: dict[str, str] = {}
    for title in header:
        shown = title.strip().lstrip("\ufeff")
        canonical = aliases.get(shown.lower())
        if canonical is None:
            columns.append(None)
            if shown:
                report.ignored_columns.append(shown)
                report.column_notes.append(NOTE_IGNORED.format(title=shown))
            continue
        field_name = canonical.replace("_", " ")
        if canonical in first_title:
            if canonical in MERGED_FIELDS:
                report.merged_columns.append(shown)
                report.column_notes.append(
                    NOTE_MERGED.format(title=shown, first=first_title[canonical], field=field_name)
                )
                columns.append(canonical)
            else:
                report.ignored_columns.append(shown)
                report.column_notes.append(
                    NOTE_DUPLICATE.format(title=shown, field=field_name, first=first_title[canonical])
                )
                columns.append(None)
            continue
        first_title[canonical] = shown
        columns.append(canonical)
    return columns


def _records(
    header: list[str], columns: list[str | None], rows: Iterator[tuple[int, list[str]]], report: ImportReport
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) for each non-blank row; rows with the wrong number of fields go to the report.
    Columns merged into one field give one value, one line per column."""
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        report.rows_read += 1
        if report.rows_read > settings.CUSTOMERS_IMPORT_MAX_ROWS:
            raise FileProblem(ERROR_TOO_MANY_ROWS.format(limit=settings.CUSTOMERS_IMPORT_MAX_ROWS))
        if len(row) != len(header):
            report.problems.append(RowProblem(line, ROW_ERROR_FIELD_COUNT.format(found=len(row), expected=len(header))))
            continue
        values: dict[str, str] = {}
        for column, cell in zip(columns, row, strict=True):
            if not column:
                continue
            value = _unescape(cell)
            if column in values:
                values[column] = "\n".join(piece for piece in (values[column], value) if piece)
            else:
                values[column] = value
        yield line, values


def _active_users_by_name() -> dict[str, User]:
    return {user.username.lower(): user for user in User.objects.filter(is_active=True)}


def _import_save(
    report: ImportReport, *, create: Callable[[], list[int]] | None, audit_import: Callable[[], None]
) -> None:
    """Create the good rows and write the audit event in one transaction: all or nothing.

    When the database refuses, nothing is kept and the report says so; an import that created nothing
    (file problem, only bad rows, database failure) is audited too, as a failure when the file was refused.
    """
    if create is not None:
        try:
            with transaction.atomic():
                report.created_ids = create()
                audit_import()
            return
        except DatabaseError as error:
            report.created_ids = []
            report.file_error = ERROR_DATABASE.format(problem=type(error).__name__)
    with transaction.atomic():
        audit_import()


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
        header, rows, delimiter = _rows(_decode(data))
        columns = _map_columns(header, COLUMN_ALIASES, report)
        if "name" not in columns:
            raise FileProblem(ERROR_NO_NAME_COLUMN)
        multi_separator = re.compile(r"[\n|]" if delimiter == ";" else r"[\n;|]")
        owners = _active_users_by_name()
        seen_emails: dict[str, int] = {}
        for line, values in _records(header, columns, rows, report):
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

    still_good: list[Customer] = []
    if good:
        taken = _existing_emails([email for _, customer in good for email in customer.emails])
        for line, customer in good:
            clash = next((email for email in customer.emails if email.lower() in taken), None)
            if clash:
                report.problems.append(
                    RowProblem(line, ROW_ERROR_DUPLICATE_EXISTING.format(value=clash, customer_id=taken[clash.lower()]))
                )
            else:
                still_good.append(customer)
    report.problems.sort(key=lambda problem: problem.line)

    def create() -> list[int]:
        created = Customer.objects.bulk_create(still_good)
        known_entities_invalidate_on_commit()
        return [customer.pk for customer in created]

    def audit_import() -> None:
        audit(
            actor=actor,
            action="customers.customers_imported",
            object_type="customers.customer",
            request=request,
            **_import_audit_fields(report),
        )

    _import_save(report, create=create if still_good else None, audit_import=audit_import)
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


def _import_audit_fields(report: ImportReport, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What both imports' audit events record (the action names stay literal at the audit() calls)."""
    return {
        "outcome": Outcome.SUCCESS if report.ok else Outcome.FAILURE,
        "details": {
            # a filename is typed text ("Smith family accounts.csv"): its fingerprint only
            **text_fingerprint(report.filename, name="filename"),
            "rows_read": report.rows_read,
            "imported": report.imported,
            "created_ids": report.created_ids[:5000],
            "rejected_lines": [problem.line for problem in report.problems][:5000],
            "file_error": report.file_error,
            **(extra or {}),
        },
    }


# ---- interactions -------------------------------------------------------------------------------------
@dataclass
class _InteractionRow:
    line: int
    customer_id: int | None  # from the customer id column; None: look the customer up by e-mail
    customer_email: str  # as written
    interaction: Interaction  # everything but the customer, already checked

    @property
    def duplicate_key(self) -> tuple[int | None, datetime, str, str]:
        interaction = self.interaction
        return interaction.customer_id, interaction.occurred_at, interaction.channel, interaction.summary


def interactions_import_require_permission(*, actor: UserLike) -> None:
    """Importing interactions needs what recording one needs, plus the right to change customer records."""
    customers_changeable_by(user=actor)
    if not actor.has_perm("customers.add_interaction"):
        raise PermissionDenied(ERROR_ADD_INTERACTION)


def _require_interaction_columns(columns: list[str | None]) -> None:
    missing = []
    if "customer_id" not in columns and "customer_email" not in columns:
        missing.append("customer_id or customer_email")
    for title, name in (("channel", "channel"), ("time", "occurred_at"), ("summary", "summary")):
        if name not in columns:
            missing.append(title)
    if missing:
        raise FileProblem(ERROR_INTERACTION_COLUMNS.format(missing=", ".join(missing)))


def _occurred_at(value: str) -> datetime:
    if not value:
        raise ValidationError(ROW_ERROR_TIME_MISSING)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise ValidationError(ROW_ERROR_TIME.format(value=value)) from error
    if timezone.is_naive(moment):
        # The site's zone, not the importing user's: a file means the same times whoever imports it.
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


def _parse_interaction_row(line: int, values: dict[str, str], *, staff_by_name: dict[str, User]) -> _InteractionRow:
    customer_id: int | None = None
    id_value = values.get("customer_id", "").removeprefix("#").strip()
    email = values.get("customer_email", "")
    if id_value:
        if not (id_value.isascii() and id_value.isdigit()):
            raise ValidationError(ROW_ERROR_CUSTOMER_ID.format(value=values["customer_id"]))
        customer_id = int(id_value)
    elif not email:
        raise ValidationError(ROW_ERROR_CUSTOMER_MISSING)
    channel = values.get("channel", "")
    if not channel:
        raise ValidationError(ROW_ERROR_CHANNEL_MISSING.format(choices=", ".join(Channel.values)))
    if channel.lower() not in CHANNELS:
        raise ValidationError(ROW_ERROR_CHANNEL.format(value=channel, choices=", ".join(Channel.values)))
    occurred_at = _occurred_at(values.get("occurred_at", ""))
    staff = None
    if values.get("staff"):
        staff = staff_by_name.get(values["staff"].lower())
        if staff is None:
            raise ValidationError(ROW_ERROR_STAFF.format(value=values["staff"]))
    if not values.get("summary"):
        raise ValidationError(ROW_ERROR_SUMMARY_MISSING)
    interaction = Interaction(
        channel=CHANNELS[channel.lower()],
        occurred_at=occurred_at,
        staff=staff,
        summary=values["summary"],
        full_text=values.get("full_text", "").replace("\r\n", "\n").strip(),
    )
    # The customers are looked up for all rows at once and the staff member is a loaded user: no query per row.
    interaction.full_clean(exclude=["customer", "staff"])
    return _InteractionRow(line=line, customer_id=customer_id, customer_email=email, interaction=interaction)


def _resolve_customers(
    rows: list[_InteractionRow], *, customers: QuerySet[Customer], report: ImportReport
) -> list[_InteractionRow]:
    """Give each row its customer, looked up only among `customers` (those the importer may see and change).

    A customer outside that set is reported in the same words as one that does not exist.
    """
    # An id beyond the database's integer range cannot exist; leaving it out keeps the query valid.
    ids = {row.customer_id for row in rows if row.customer_id is not None and row.customer_id < 2**63}
    emails_by_id: dict[int, set[str]] = {}
    if ids:
        for pk, customer_emails in customers.filter(pk__in=ids).values_list("pk", "emails"):
            emails_by_id[pk] = {email.lower() for email in customer_emails}
    written = {row.customer_email for row in rows if row.customer_id is None}
    wanted = {email.lower() for email in written}
    ids_by_email: dict[str, list[int]] = {}
    if wanted:
        # Stored e-mails are lower-cased when ASCII and kept as written otherwise: ask for both spellings.
        matching = customers.filter(emails__overlap=sorted(wanted | written)).order_by("pk")
        for pk, customer_emails in matching.values_list("pk", "emails"):
            for email in {email.lower() for email in customer_emails} & wanted:
                ids_by_email.setdefault(email, []).append(pk)
    resolved = []
    for row in rows:
        problem = ""
        email = row.customer_email.lower()
        if row.customer_id is not None:
            if row.customer_id not in emails_by_id:
                problem = ROW_ERROR_CUSTOMER_NOT_FOUND.format(value=row.customer_id)
            elif email and email not in emails_by_id[row.customer_id]:
                problem = ROW_ERROR_CUSTOMER_EMAIL_MISMATCH.format(
                    customer_id=row.customer_id, value=row.customer_email
                )
            else:
                row.interaction.customer_id = row.customer_id
        else:
            matches = ids_by_email.get(email, [])
            if not matches:
                problem = ROW_ERROR_CUSTOMER_EMAIL_NOT_FOUND.format(value=row.customer_email)
            elif len(matches) > 1:
                problem = ROW_ERROR_CUSTOMER_EMAIL_AMBIGUOUS.format(
                    value=row.customer_email, ids=", ".join(f"#{pk}" for pk in matches)
                )
            else:
                row.interaction.customer_id = matches[0]
        if problem:
            report.problems.append(RowProblem(row.line, problem))
        else:
            resolved.append(row)
    return resolved


def _drop_duplicates(rows: list[_InteractionRow], *, report: ImportReport) -> list[_InteractionRow]:
    """Leave out rows repeating an earlier row or an interaction already recorded, so a file can be imported
    again after fixing its rejected rows without doubling the ones that went in."""
    if not rows:
        return []
    times = [row.interaction.occurred_at for row in rows]
    recorded = Interaction.objects.filter(
        customer_id__in={row.interaction.customer_id for row in rows}, occurred_at__range=(min(times), max(times))
    ).values_list("pk", "customer_id", "occurred_at", "channel", "summary")
    existing: dict[tuple[int | None, datetime, str, str], int] = {}
    for pk, customer_id, occurred_at, channel, summary in recorded:
        existing.setdefault((customer_id, occurred_at, channel, summary), pk)
    first_line: dict[tuple[int | None, datetime, str, str], int] = {}
    kept = []
    for row in rows:
        key = row.duplicate_key
        if key in first_line:
            report.problems.append(
                RowProblem(row.line, ROW_ERROR_INTERACTION_DUPLICATE_IN_FILE.format(line=first_line[key]))
            )
        elif key in existing:
            report.problems.append(
                RowProblem(row.line, ROW_ERROR_INTERACTION_EXISTS.format(interaction_id=existing[key]))
            )
        else:
            first_line[key] = row.line
            kept.append(row)
    return kept


def interactions_import(
    *, actor: UserLike, data: bytes, filename: str, request: HttpRequest | None = None
) -> ImportReport:
    """Add interactions to existing customers from a CSV file: every row is checked, then all good rows are
    created in one transaction (all or nothing) with one audit event, like `customers_import`.

    Rows naming a customer the actor may not see or change are reported as if that customer did not exist.
    """
    interactions_import_require_permission(actor=actor)
    report = ImportReport(filename=filename[:200])
    parsed: list[_InteractionRow] = []
    try:
        header, rows, _ = _rows(_decode(data))
        columns = _map_columns(header, INTERACTION_COLUMN_ALIASES, report)
        _require_interaction_columns(columns)
        staff_by_name = _active_users_by_name()
        for line, values in _records(header, columns, rows, report):
            try:
                parsed.append(_parse_interaction_row(line, values, staff_by_name=staff_by_name))
            except ValidationError as error:
                report.problems.append(RowProblem(line, _message(error)))
    except FileProblem as problem:
        report.file_error = str(problem)
        report.problems.clear()
        parsed.clear()

    good = _resolve_customers(parsed, customers=customers_changeable_by(user=actor), report=report)
    good = _drop_duplicates(good, report=report)
    report.problems.sort(key=lambda problem: problem.line)
    interactions = [row.interaction for row in good]

    def create() -> list[int]:
        return [interaction.pk for interaction in Interaction.objects.bulk_create(interactions)]

    def audit_import() -> None:
        imported = interactions if report.created_ids else []
        audit(
            actor=actor,
            action="customers.interactions_imported",
            object_type="customers.interaction",
            request=request,
            **_import_audit_fields(
                report,
                {
                    "customer_ids": sorted({interaction.customer_id for interaction in imported})[:5000],
                    "channels": sorted({interaction.channel for interaction in imported}),
                },
            ),
        )

    # Interactions are not known entities and feed no memory (interaction_create does neither), so unlike
    # the customer import there is nothing to tell governance after the commit.
    _import_save(report, create=create if interactions else None, audit_import=audit_import)
    return report


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
                **(text_fingerprint(search, name="search") if search else {}),
            },
            request=request,
        )
    writer = csv.writer(_Echo())
    lines = [writer.writerow(EXPORT_COLUMNS)]
    lines.extend(writer.writerow(_export_row(customer)) for customer in customers)
    return ["\ufeff" + lines[0], *lines[1:]]
