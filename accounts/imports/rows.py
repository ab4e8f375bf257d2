"""Row rules of the CSV imports: one function per kind, from (extra, line, row) to (errors, clean tuple).

They need nothing but their arguments (no app, no database: `extra` is what the spec's prepare() loaded), so
accounts.imports.chunks can run them in worker processes, which import this module and little else."""
import re

from accounts.contact import ContactError, normalise_email, normalise_locale, parse_phone
from accounts.imports.csvio import RowError
from accounts.states import RecoveryState

ACCOUNT_COLUMNS = ("account_number", "name", "phone", "email", "locale")
RECOVERY_COLUMNS = ("account_number", "category", "state", "items_total", "items_recovered", "note")
MAX_ACCOUNT_NUMBER = 64
MAX_NAME = 200
MAX_NOTE = 500
STATES = {s.value for s in RecoveryState}
STATES_ORDER = [s.value for s in RecoveryState]
_CONTROL = re.compile(r"[\x00-\x1f]")


def check_account_number(value: str) -> str | None:
    """The reason an account number is unusable, or None."""
    if not value:
        return "An account number is required."
    if len(value) > MAX_ACCOUNT_NUMBER:
        return f"At most {MAX_ACCOUNT_NUMBER} characters."
    if _CONTROL.search(value):
        return "Contains control characters."
    return None


def validate_account(extra: dict, line: int, row: dict) -> tuple[list[RowError], tuple | None]:
    """An accounts row -> (line, number, name, phone, email, language, time zone). extra: region, languages."""
    errors = []
    number = row["account_number"]
    if reason := check_account_number(number):
        errors.append(RowError(line, "account_number", reason))
    name = row["name"]
    if len(name) > MAX_NAME:
        errors.append(RowError(line, "name", f"At most {MAX_NAME} characters."))
    phone = email = locale = zone = None
    try:
        phone, zone = parse_phone(row["phone"], extra["region"]) or (None, None)
    except ContactError as e:
        errors.append(RowError(line, "phone", str(e)))
    try:
        email = normalise_email(row["email"])
    except ContactError as e:
        errors.append(RowError(line, "email", str(e)))
    try:
        locale = normalise_locale(row["locale"])
        if locale.split("-")[0] not in extra["languages"]:
            ours = ", ".join(extra["languages"])
            errors.append(RowError(line, "locale", f"{row['locale'].strip()!r} is not a language subscribers "
                                   f"can be written to in: use one of {ours} (a region, as in es-MX, is kept), "
                                   "or leave it empty for en."))
    except ContactError as e:
        errors.append(RowError(line, "locale", str(e)))
    if errors:
        return errors, None
    return [], (line, number, name, phone, email, locale, zone)


def parse_count(value) -> int | None:
    """'' -> None; '12' -> 12; ValueError with a reason otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("Must be a whole number.")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip()
        if not text.isdigit():
            raise ValueError(f"{text!r} is not a whole number of 0 or more.")
        n = int(text)
    if n < 0 or n > 2_000_000_000:
        raise ValueError("Must be between 0 and 2,000,000,000.")
    return n


def validate_status(categories: dict[str, int], line: int, row: dict) -> tuple[list[RowError], tuple | None]:
    """Check one recovery row (category key, state, counts, note); shared by CSV, API and console."""
    errors = []
    number = (row.get("account_number") or "").strip()
    if (problem := check_account_number(number)) is not None:  # the same rule as the accounts import
        errors.append(RowError(line, "account_number", problem))
    key = (row.get("category") or "").strip().lower()
    category_id = categories.get(key)
    if category_id is None:
        errors.append(RowError(line, "category", f"{key!r} is not a category of this incident; use one of: "
                                                 f"{', '.join(categories) or '(none defined yet)'}."))
    state = (row.get("state") or "").strip().lower()
    if state not in STATES:
        errors.append(RowError(line, "state", f"{state!r} is not a state; use one of: {', '.join(STATES_ORDER)}."))
    total = recovered = None
    try:
        total = parse_count(row.get("items_total"))
    except ValueError as e:
        errors.append(RowError(line, "items_total", str(e)))
    try:
        recovered = parse_count(row.get("items_recovered"))
    except ValueError as e:
        errors.append(RowError(line, "items_recovered", str(e)))
    if total is not None and recovered is not None and recovered > total:
        errors.append(RowError(line, "items_recovered", f"{recovered} recovered is more than the {total} in total."))
    note = (row.get("note") or "").strip()
    if len(note) > MAX_NOTE:
        errors.append(RowError(line, "note", f"At most {MAX_NOTE} characters."))
    if errors:
        return errors, None
    return [], (line, number, category_id, state, total, recovered, note)


def validate_recovery(extra: dict, line: int, row: dict) -> tuple[list[RowError], tuple | None]:
    """A recovery row; extra: categories ({key: id})."""
    return validate_status(extra["categories"], line, row)
