"""The phone fast path (accounts.phones) against phonenumbers itself (contact._parse_phone_reference).

parse_phone(x) is fast_parse_phone(x) when that answers, else _parse_phone_reference(x). So parse_phone
agrees with the reference on every input exactly when each answer of the fast path is the reference's
answer (the same e164 and zone; it never answers for an input the reference rejects). The differential
test checks that on every one of 1,000,000 seeded inputs, and parse_phone against the reference (the
same (e164, zone), or the same ContactError message) on every input the fast path answers and on an
eighth of the others. The inputs are valid numbers of every region and non-geographic code
(phonenumbers' example numbers) and digit variations of them (so also wrong lengths and prefixes), in
E.164, with punctuation, national forms of the default region (with national prefix, calling code
without '+', international prefixes), random US numbers in the usual national formats, random digit
strings, and junk (letters, blanks, unicode digits and spaces, very long strings)."""
import os
import random
from concurrent.futures import ProcessPoolExecutor

import phonenumbers
import pytest
from phonenumbers import re_util

from accounts.contact import ContactError, _parse_phone_reference, parse_phone
from accounts.phones import fast_parse_phone

TOTAL = 1_000_000
CHUNKS = 40
SEED = 20261205

DEFAULT_REGIONS = ["US"] * 12 + ["CA", "GB", "DE", "FR", "IT", "IN", "BR", "RU", "KZ", "AU", "JP", "CN", "MX", "AR",
                                 "NZ", "ZA", "NG", "AE", "UA", "AG", "GG", "JE", "FI", "AX", "SG", "KR", "VA", "001",
                                 "ZZ", "us", None]
PUNCT = [" ", "-", ".", " - ", "  ", "(", ")", "/", "\t", "\u00a0", "\u2013", "_", "*", ","]
JUNK = ("abcxyzABCXYZ+-().#*,;/ \t\u00a0\u3000\u200b0123456789٠١٢٣٤٥٦٧٨٩０１２３４５６７８９²ⅷ𝟘𝟙"
        "extEXT:=~@!éñ漢")
US_FORMATS = ["{a}{b}{c}", "({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a} {b} {c}", "1{a}{b}{c}",
              "1-{a}-{b}-{c}", "1 ({a}) {b}-{c}", "+1{a}{b}{c}", "+1 {a}-{b}-{c}", "+1 ({a}) {b}-{c}",
              "({a}){b}-{c}", "{a}/{b}-{c}", "{a}-{b}-{c} x12", "011 1 {a} {b} {c}", "{a}{b}{c}0", "{a}{b}"]

_BASES = None


def _bases():
    """(calling code, national number, region or None) of every example number the library has."""
    global _BASES
    if _BASES is None:
        seen = set()
        for region in sorted(phonenumbers.SUPPORTED_REGIONS):
            for kind in range(12):  # the PhoneNumberType values FIXED_LINE .. VOICEMAIL
                n = phonenumbers.example_number_for_type(region, kind)
                if n is not None:
                    seen.add((n.country_code, phonenumbers.national_significant_number(n), region))
        for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
            n = phonenumbers.example_number_for_non_geo_entity(cc)
            if n is not None:
                seen.add((cc, phonenumbers.national_significant_number(n), None))
        _BASES = sorted(seen, key=lambda b: (b[0], b[1], b[2] or ""))
    return _BASES


def _vary(rng: random.Random, nsn: str) -> str:
    """The number itself, or a variation: new trailing digits, a changed/added/removed digit, a prefix."""
    r = rng.random()
    if r < 0.25:
        return nsn
    if r < 0.55:
        k = rng.randint(1, len(nsn))
        return nsn[:-k] + "".join(rng.choice("0123456789") for _ in range(k))
    if r < 0.65:
        i = rng.randrange(len(nsn))
        return nsn[:i] + rng.choice("0123456789") + nsn[i + 1:]
    if r < 0.75:
        i = rng.randrange(len(nsn) + 1)
        return nsn[:i] + rng.choice("0123456789") + nsn[i:]
    if r < 0.85 and len(nsn) > 1:
        i = rng.randrange(len(nsn))
        return nsn[:i] + nsn[i + 1:]
    if r < 0.95:
        return rng.choice(["0", "1", "00", "8", "9", "01", "10"]) + nsn
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 18)))


def _group(rng: random.Random, digits: str, seps=(" ", "-", ".")) -> str:
    """digits split into groups joined by punctuation, sometimes with parentheses around the first."""
    out, i = [], 0
    while i < len(digits):
        k = rng.randint(1, 4)
        out.append(digits[i:i + k])
        i += k
    if len(out) > 1 and rng.random() < 0.3:
        out[0] = f"({out[0]})"
    return "".join(g + (rng.choice(seps) if j < len(out) - 1 else "") for j, g in enumerate(out))


def _case(rng: random.Random) -> tuple[str, str | None]:
    region = rng.choice(DEFAULT_REGIONS)
    r = rng.random()
    if r < 0.45:  # a (varied) example number, international or national
        cc, nsn, own = rng.choice(_bases())
        nsn = _vary(rng, nsn)
        if own and rng.random() < 0.4:
            region = own
        f = rng.random()
        if f < 0.35:
            return f"+{cc}{nsn}", region
        if f < 0.55:
            return "+" + _group(rng, f"{cc}{nsn}", rng.choice([(" ",), ("-",), (" ", "-", "."), tuple(PUNCT)])), region
        if f < 0.75:
            return _group(rng, nsn) if rng.random() < 0.5 else nsn, region
        if f < 0.85:
            return f"{cc}{nsn}", region
        return rng.choice(["00", "011", "0011", "810", "+", "++", "＋", " +", "+0", "0"]) + f"{cc} {nsn}", region
    if r < 0.75:  # US numbers in the formats of a US export, valid or not
        a = f"{rng.randint(0, 999):03d}" if rng.random() < 0.1 else f"{rng.randint(200, 999)}"
        b, c = f"{rng.randint(0, 999):03d}", f"{rng.randint(0, 9999):04d}"
        return rng.choice(US_FORMATS).format(a=a, b=b, c=c), ("US" if rng.random() < 0.8 else region)
    if r < 0.9:  # random digit strings
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 20)))
        return rng.choice(["", "+", "+", "0", "00", " "]) + (_group(rng, digits) if rng.random() < 0.3 else digits), region
    # junk
    n = rng.choice([0, 1, 2, 3, 5, 8, 12, 16, 24, 40, 300])
    s = "".join(rng.choice(JUNK) for _ in range(n))
    if rng.random() < 0.3:
        s = f"+1206555{rng.randint(0, 9999):04d}"[:rng.randint(0, 12)] + s
    return s, region


def _outcome(fn, raw, region):
    try:
        return fn(raw, region)
    except ContactError as e:
        return ("ContactError", str(e))


def _check_chunk(args) -> tuple[int, int, list]:
    """Generate chunk `index` of the corpus and compare; returns (cases, fast-path answers, mismatches)."""
    index, count = args
    # Only the reference's speed: the same patterns, compiled once rather than again whenever they drop
    # out of the re module's small cache (a corpus of every region thrashes it).
    getattr(re_util, "enable_pattern_cache", lambda: None)()
    rng = random.Random(SEED * 1000 + index)
    fast_hits, bad = 0, []
    for i in range(count):
        raw, region = _case(rng)
        stripped = raw.strip()
        fast = fast_parse_phone(stripped, region) if stripped else None
        # parse_phone is the fast path's answer or else the reference's, so it agrees with the reference
        # on every input exactly when every answer of the fast path is the reference's: checked on all.
        # Where the fast path declines, parse_phone is the reference itself (at the reference's cost);
        # that wiring is checked on every 8th of those.
        if fast is None and i % 8:
            continue
        want = _outcome(_parse_phone_reference, raw, region)
        if fast is not None:
            fast_hits += 1
            if fast != want:
                bad.append((raw, region, "fast", fast, want))
        got = _outcome(parse_phone, raw, region)
        if got != want:
            bad.append((raw, region, "parse_phone", got, want))
    return count, fast_hits, bad[:20]


@pytest.mark.slow
@pytest.mark.nodb
def test_fast_path_agrees_with_phonenumbers_on_a_million_inputs():
    per = TOTAL // CHUNKS
    jobs = [(i, per) for i in range(CHUNKS)]
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_check_chunk, jobs))
    total = sum(r[0] for r in results)
    hits = sum(r[1] for r in results)
    bad = [b for r in results for b in r[2]]
    assert total >= 1_000_000
    assert not bad, bad[:20]
    assert hits > total * 0.2, (hits, total)  # the fast path is really exercised, not always declined


@pytest.mark.parametrize("raw,region,want", [
    ("+12065550100", "US", ("+12065550100", "America/Los_Angeles")),
    ("(206) 555-0100", "US", ("+12065550100", "America/Los_Angeles")),
    ("206-555-0100", "US", ("+12065550100", "America/Los_Angeles")),
    ("206.555.0100", "US", ("+12065550100", "America/Los_Angeles")),
    ("2065550100", "US", ("+12065550100", "America/Los_Angeles")),
    ("1-206-555-0100", "US", ("+12065550100", "America/Los_Angeles")),
    ("  +1 (206) 555-0100 ", "GB", ("+12065550100", "America/Los_Angeles")),
    ("+442079460000", "US", ("+442079460000", "Europe/London")),
    ("+44 20 7946 0000", "US", ("+442079460000", "Europe/London")),
    ("020 7946 0000", "GB", ("+442079460000", "Europe/London")),
    ("+16135550123", "US", ("+16135550123", "America/Toronto")),
    ("+390612345678", "US", ("+390612345678", "Europe/Rome")),
    ("+80012345678", "US", ("+80012345678", None)),
    ("", "US", None),
    ("   ", "US", None),
])
def test_named_cases(raw, region, want):
    assert parse_phone(raw, region) == want == _parse_phone_reference(raw, region)


@pytest.mark.parametrize("raw", ["+1206555010", "206-555-010", "(206) 555-01000", "+999 123", "+0 206 555 0100",
                                 "hello", "+", "12", "٢٠٦٥٥٥٠١٠", "+1 206 555 0100 " * 20])
def test_invalid_named_cases(raw):
    with pytest.raises(ContactError) as got:
        parse_phone(raw, "US")
    with pytest.raises(ContactError) as want:
        _parse_phone_reference(raw, "US")
    assert str(got.value) == str(want.value)


def test_fast_path_answers_the_common_shapes():
    """The shapes of an import take the fast path (None would mean: left to phonenumbers)."""
    for raw in ("+12065550100", "(206) 555-0100", "206-555-0100", "12065550100", "+44 20 7946 0000"):
        assert fast_parse_phone(raw, "US") is not None, raw
    for raw in ("+1206555010", "020 7946 0000", "٢٠٦٥٥٥٠١٠٠", "+1 206 555 0100 ext 5"):
        assert fast_parse_phone(raw, "US") is None, raw
