"""A fast path for phone numbers in the shapes an import is made of, exact to the phonenumbers library.

`fast_parse_phone(raw, default_region)` returns (e164, time zone or None) for a valid number written as
digits with at most ASCII punctuation ' ().-' and an optional leading '+' ('+12065550100',
'(206) 555-0100', '+44 20 7946 0000'); it returns None for anything else, *including every invalid
number*, and the caller then asks phonenumbers itself (accounts.contact._parse_phone_reference), which
gives the result and the error message. So this path only has to be right when it says yes.

Everything is read from the library's own metadata (country calling codes, each region's patterns,
possible lengths, national and international prefixes) and compiled once, when a calling code or a
default region is first seen. Why each step gives what phonenumbers.parse + is_valid_number +
time_zones_for_geographical_number + format_number(E164) give (phonenumbers 9.x, phonenumberutil.py):

* Shape. For a string of ASCII digits and ' ().-' (optionally '+' first) with at least 3 digits, parse
  reads exactly its digits: no ';phone-context=' or ';isub=', the possible number starts at the '+' or
  the first digit and ends at the last digit (_extract_possible_number; no '/' or '\\' for a second
  number), it is viable (_VALID_PHONE_NUMBER_PATTERN allows any of that punctuation between 3+ digits),
  no extension marker (letters, '#', '~', ',', ';') and no letters to read as a vanity number. So it
  parses like '+' + digits, or like the bare digits.
* '+' + digits: the calling code is the shortest of the first 1-3 digits that the library knows
  (_extract_country_code; a leading 0 is none); the rest is the national number unless the main
  region's national_prefix_for_parsing matches its start, which we leave to the library. The rest keeps
  its leading zeros (italian_leading_zero), so the E.164 form is the input itself.
* Bare digits with default region R: only when R is the main region of its calling code C (so parse
  and we use the same metadata) and the digits do not start with R's international prefix. Digits
  not starting with C are the national number of C (then as above); digits starting with C are read as
  C + the rest only when the library's rule certainly says so (the whole does not match R's general
  pattern, the rest does and is no national prefix), otherwise we leave it to the library.
* Validity: is_valid_number picks the region (the only one, or the first of the calling code's regions
  whose leading_digits match or, with none, whose number types match) and asks whether the number is
  of some type there: it matches the general description and one of premium rate, toll free, shared
  cost, VoIP, personal, pager, UAN, voicemail, fixed line or (unless the same pattern) mobile, each
  with its possible lengths. We compile, per region and length, general pattern and one alternation.
* Time zone: the longest prefix (at most TIMEZONE_LONGEST_PREFIX digits) of the E.164 digits found in
  the library's TIMEZONE_DATA. No key for calling code C is longer than C's longest key, so the answer
  depends only on that many leading digits (7 for +1): cached on them, found by walking the prefixes
  up through the set of all key prefixes.

The argument leans on the library's internals (and a few of its private names, imported below, so a
rename fails loudly): after upgrading phonenumbers, tests/accounts/test_phone_differential.py must pass.
"""
import re

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, SUPPORTED_REGIONS
from phonenumbers import timezone as phone_tz
from phonenumbers.phonenumberutil import _MAX_LENGTH_FOR_NSN, _MIN_LENGTH_FOR_NSN, _extract_country_code

_NON_GEO = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
_SHAPE = re.compile(r"\+?[0-9 ().-]{3,40}")
_PUNCT = str.maketrans("", "", " ().-+")
# Calling codes by their digits ('1', '44', '886'): the library's own table.
_CODES = {str(cc): cc for cc in COUNTRY_CODE_TO_REGION_CODE}

_UNKNOWN_ZONE = phone_tz.UNKNOWN_TIMEZONE
_TZ_DATA = phone_tz.TIMEZONE_DATA
_TZ_LONGEST = phone_tz.TIMEZONE_LONGEST_PREFIX
_TZ_PREFIXES = frozenset(key[:i] for key in _TZ_DATA for i in range(1, len(key) + 1))

_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line")


def _compile(pattern: str | None):
    return re.compile(pattern) if pattern else None


class _Validator:
    """is_valid_number_for_region for one region's metadata, as two fullmatches per number."""
    __slots__ = ("by_length",)

    def __init__(self, metadata, country_code: int, region: str):
        self.by_length: dict[int, tuple] = {}
        if metadata is None or (region != _NON_GEO and country_code != phonenumbers.country_code_for_valid_region(region)):
            return
        general = metadata.general_desc
        if general is None or not general.national_number_pattern:
            return
        descs = [getattr(metadata, name) for name in _DESCS]
        if not metadata.same_mobile_and_fixed_line_pattern:
            descs.append(metadata.mobile)
        for length in range(_MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN + 1):
            if general.possible_length and length not in general.possible_length:
                continue
            patterns = [d.national_number_pattern for d in descs
                        if d is not None and d.national_number_pattern
                        and (not d.possible_length or length in d.possible_length)]
            if patterns:
                self.by_length[length] = (re.compile(general.national_number_pattern),
                                          re.compile("|".join(f"(?:{p})" for p in patterns)))

    def __call__(self, nsn: str) -> bool:
        res = self.by_length.get(len(nsn))
        return res is not None and res[0].fullmatch(nsn) is not None and res[1].fullmatch(nsn) is not None


class _Country:
    """What a calling code needs: the national prefix of its main region, its regions in order, and how
    many leading digits the time zone can depend on (its longest key in TIMEZONE_DATA)."""
    __slots__ = ("code", "national_prefix", "regions", "only", "zone_digits")

    def __init__(self, cc: int):
        self.code = str(cc)
        self.zone_digits = max([len(key) for key in _TZ_PREFIXES if key.startswith(self.code)] or [len(self.code)])
        regions = COUNTRY_CODE_TO_REGION_CODE[cc]
        main = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        self.national_prefix = _compile(main.national_prefix_for_parsing) if main is not None else None
        if len(regions) == 1:
            self.only = _Validator(PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0]), cc, regions[0])
            self.regions = ()
        else:
            self.only = None
            self.regions = []
            for region in regions:
                metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
                if metadata is None:
                    continue
                for_region = PhoneMetadata.metadata_for_region_or_calling_code(cc, region.upper())
                valid = _Validator(for_region, cc, region)
                # As the library: any leading_digits that is not None decides, even an empty one.
                leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
                pick = _Validator(metadata, cc, _NON_GEO)  # _number_type_helper alone: no calling-code check
                # Picked by its number types, it is valid when asked the same question again.
                same = for_region is metadata and cc == phonenumbers.country_code_for_valid_region(region)
                self.regions.append((leading, pick, valid, same))

    def valid(self, nsn: str) -> bool:
        if self.only is not None:
            return self.only(nsn)
        for leading, pick, valid, same in self.regions:
            if leading is not None:
                if leading.match(nsn):
                    return valid(nsn)
            elif pick(nsn):
                return same or valid(nsn)
        return False


class _Region:
    """A default region that is the main region of its calling code: how its national numbers read."""
    __slots__ = ("code", "international_prefix", "general")

    def __init__(self, region: str):
        metadata = PhoneMetadata.metadata_for_region(region, None)
        cc = metadata.country_code
        self.code = str(cc)
        prefix = metadata.international_prefix
        self.international_prefix = re.compile(prefix if prefix is not None else "NonMatch")  # as the library
        self.general = _compile(metadata.general_desc.national_number_pattern) if metadata.general_desc else None


class _Lazy(dict):
    """A dict that builds a missing entry with its function once (metadata is loaded on first use)."""
    def __init__(self, build):
        super().__init__()
        self.build = build

    def __missing__(self, key):
        value = self[key] = self.build(key)
        return value


def _build_country(code: str) -> _Country | None:
    """The calling code written as code ('1', '44'), or None when the library knows no such code."""
    cc = _CODES.get(code)
    return _Country(cc) if cc is not None else None


def _build_region(region) -> _Region | None:
    """The default region when it is the main region of its calling code (and no shorter code is a
    prefix of that code); None: its national numbers are left to the library."""
    if isinstance(region, str) and region in SUPPORTED_REGIONS:
        cc = phonenumbers.country_code_for_region(region)
        if cc and phonenumbers.region_code_for_country_code(cc) == region and _extract_country_code(str(cc))[0] == cc:
            return _Region(region)
    return None


_countries = _Lazy(_build_country)  # by the first 1, 2 or 3 digits of an E.164 number
_regions = _Lazy(_build_region)


_zone_cache: dict[str, str | None] = {}


def _zone(digits: str, country: _Country) -> str | None:
    """time_zones_for_geographical_number's first zone for the E.164 digits (without '+'), which depends
    only on the first country.zone_digits digits (no longer key starts with the calling code)."""
    key = digits[:country.zone_digits]
    try:
        return _zone_cache[key]
    except KeyError:
        pass
    if len(_zone_cache) >= 100_000:
        _zone_cache.clear()
    zone = _zone_cache[key] = _zone_lookup(key)
    return zone


def _zone_lookup(digits: str) -> str | None:
    found = None
    for i in range(1, min(len(digits), _TZ_LONGEST) + 1):
        prefix = digits[:i]
        if prefix not in _TZ_PREFIXES:
            break
        if prefix in _TZ_DATA:
            found = prefix
    if found is None:
        return None
    zones = _TZ_DATA[found]
    return zones[0] if zones and zones[0] != _UNKNOWN_ZONE else None


def _international(digits: str) -> tuple[str, str | None] | None:
    """'+' + digits (ASCII digits only) when valid; None when the library must decide."""
    if len(digits) < 3 or digits[0] == "0":
        return None
    country = _countries[digits[:1]] or _countries[digits[:2]] or _countries[digits[:3]]
    if country is None:
        return None
    nsn = digits[len(country.code):]
    if not _MIN_LENGTH_FOR_NSN <= len(nsn) <= _MAX_LENGTH_FOR_NSN:
        return None
    if country.national_prefix is not None and country.national_prefix.match(nsn):
        return None
    if not country.valid(nsn):
        return None
    return "+" + digits, _zone(digits, country)


def fast_parse_phone(raw: str, default_region) -> tuple[str, str | None] | None:
    """(e164, zone) for a valid number in a simple shape; None means: ask phonenumbers (raw is stripped)."""
    if raw[:1] == "+":
        digits = raw[1:]
        if digits.isdigit() and digits.isascii():
            return _international(digits)
    if not _SHAPE.fullmatch(raw):
        return None
    digits = raw.translate(_PUNCT)
    if len(digits) < 3:
        return None
    if raw[0] == "+":
        return _international(digits)
    try:
        region = _regions[default_region]
    except TypeError:  # not hashable: not a region
        return None
    if region is None or region.international_prefix.match(digits):
        return None
    code = region.code
    if not digits.startswith(code):
        return _international(code + digits)
    # Written with the calling code but no '+': the library's rule, taken only where it certainly applies.
    rest = digits[len(code):]
    general = region.general
    if (rest and general is not None and not general.fullmatch(digits) and general.fullmatch(rest)
            and not (_countries[code].national_prefix or _NEVER).match(rest)):
        return _international(digits)
    return None


_NEVER = re.compile(r"(?!)")
