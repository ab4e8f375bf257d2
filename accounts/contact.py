"""Contact details: phone numbers to E.164, emails, locales, and the time zone a number implies."""
import re
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_tz

from accounts.phones import fast_parse_phone

_LOCALE = re.compile(r"^([a-zA-Z]{2,3})(?:[-_]([a-zA-Z]{2}|\d{3}))?$")
_E164 = phonenumbers.PhoneNumberFormat.E164
# RFC 5322 dot-atom in ASCII: the common case, checked here; anything else goes to email_validator whole.
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


class ContactError(ValueError):
    """A value that cannot be used; the message says what to fix."""


def parse_phone(raw: str, default_region: str) -> tuple[str, str | None] | None:
    """'(206) 555-0100' -> ('+12065550100', 'America/Los_Angeles'); '' -> None; ContactError if invalid.

    Valid numbers in the common shapes (E.164, national digits with ' ().-') take accounts.phones' fast
    path, which is exact to phonenumbers (tests/accounts/test_phone_differential.py); the rest, and every
    invalid number with its message, are phonenumbers' own answer."""
    raw = raw.strip()
    if not raw:
        return None
    return fast_parse_phone(raw, default_region) or _parse_phone_reference(raw, default_region)


def _parse_phone_reference(raw: str, default_region: str) -> tuple[str, str | None] | None:
    """parse_phone by phonenumbers alone: the fallback of the fast path, and what the tests compare it with."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as e:
        raise ContactError(f"{raw!r} is not a phone number: {e._msg}") from None
    if not phonenumbers.is_valid_number(number):
        raise ContactError(f"{raw!r} is not a valid phone number for its country "
                           f"(numbers without +country code are read as {default_region}).")
    # The prefix table alone (the library's own data): the number is already known to be valid, and
    # time_zones_for_number would classify it a second time at twice the cost of everything else.
    zones = phone_tz.time_zones_for_geographical_number(number)
    zone = zones[0] if zones and zones[0] != phone_tz.UNKNOWN_TIMEZONE else None
    return phonenumbers.format_number(number, _E164), zone


def normalise_phone(raw: str, default_region: str) -> str | None:
    """The E.164 form of a phone number ('' -> None); ContactError when it is not a valid number."""
    parsed = parse_phone(raw, default_region)
    return parsed[0] if parsed else None


def time_zone_for(e164: str | None) -> str | None:
    """The (first) time zone the numbering plan gives a number, or None when it does not say."""
    if not e164:
        return None
    return parse_phone(e164, "US")[1]


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """Validate a domain once (IDNA and all): a million addresses share a few thousand domains."""
    return validate_email(f"x@{domain}", check_deliverability=False).domain


def normalise_email(raw: str) -> str | None:
    """Validate an email address (syntax only, no DNS); '' -> None; lower-cased."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        local, sep, domain = raw.rpartition("@")
        if sep and _DOT_ATOM.match(local) and len(local) <= 64 and len(raw) <= 254:
            return f"{local}@{_domain(domain)}".lower()
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as e:
        raise ContactError(f"{raw!r} is not a valid email address: {e}") from None


@lru_cache(maxsize=1024)  # a million rows carry a handful of tags
def normalise_locale(raw: str, default: str = "en") -> str:
    """'es_mx' -> 'es-MX', 'EN' -> 'en', '' -> default; ContactError when it is not a language tag."""
    raw = raw.strip()
    if not raw:
        return default
    m = _LOCALE.match(raw)
    if not m:
        raise ContactError(f"{raw!r} is not a language tag such as en, es or es-MX.")
    lang, region = m.group(1).lower(), m.group(2)
    return f"{lang}-{region.upper()}" if region else lang
