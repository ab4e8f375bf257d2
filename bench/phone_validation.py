"""Benchmark: phone validation per number, accounts.contact.parse_phone (fast path, phonenumbers for the
rest) beside the reference (phonenumbers alone: parse, is_valid_number, time zone, E.164), on an
import-like corpus: mostly US E.164 and US national formats, some other countries, about 1% invalid.
Both give the same answers; that is checked here too (and in tests/accounts/test_phone_differential.py).

Usage: .venv/bin/python bench/phone_validation.py [N]   (default 200,000 numbers)"""
import random
import sys
import time

from common import AREA_CODES, phone

import phonenumbers
from accounts.contact import ContactError, _parse_phone_reference, parse_phone
from accounts.phones import fast_parse_phone

OTHERS = ["GB", "DE", "FR", "MX", "IN", "BR", "CA", "AU", "JP", "ES", "IT", "PH", "NG", "PL"]
US_NATIONAL = ["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}{b}{c}", "{a}.{b}.{c}", "1-{a}-{b}-{c}", "+1 ({a}) {b}-{c}"]


def corpus(n: int) -> list[str]:
    rng = random.Random(15)
    examples = {r: phonenumbers.national_significant_number(phonenumbers.example_number_for_type(r, kind))
                for r in OTHERS for kind in (phonenumbers.PhoneNumberType.MOBILE,)}
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.60:  # US E.164, as bench/common.py writes them
            out.append(phone(i))
        elif r < 0.85:  # US national formats
            a, b, c = rng.choice(AREA_CODES), rng.randint(200, 999), f"{rng.randint(0, 9999):04d}"
            out.append(rng.choice(US_NATIONAL).format(a=a, b=b, c=c))
        elif r < 0.99:  # other countries, E.164 (some with spaces): example mobiles, last 3 digits varied
            region = rng.choice(OTHERS)
            nsn = examples[region][:-3] + f"{rng.randint(0, 999):03d}"
            cc = phonenumbers.country_code_for_region(region)
            out.append(f"+{cc}{nsn}" if rng.random() < 0.8 else f"+{cc} {nsn[:3]} {nsn[3:]}")
        else:  # invalid: a digit short, no such area code, not a number
            out.append(rng.choice([phone(i)[:-1], f"+1123{rng.randint(2000000, 9999999)}", "n/a", "206-555-010"]))
    return out


def run(fn, numbers, region="US") -> tuple[float, list]:
    results = []
    append = results.append
    t = time.perf_counter()
    for raw in numbers:
        try:
            append(fn(raw, region))
        except ContactError as e:
            append(str(e))
    return time.perf_counter() - t, results


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 200_000))
    numbers = corpus(n)
    run(parse_phone, numbers[:2000])  # warm both (metadata loads lazily)
    run(_parse_phone_reference, numbers[:2000])
    ref_s, ref = run(_parse_phone_reference, numbers)
    new_s, new = run(parse_phone, numbers)
    assert new == ref, next((raw, a, b) for raw, a, b in zip(numbers, new, ref) if a != b)
    fast = sum(1 for raw in numbers if fast_parse_phone(raw.strip(), "US") is not None)
    invalid = sum(1 for r in ref if isinstance(r, str))
    print(f"phone validation, {n:,} numbers (import-like: US E.164 and national formats, other countries, "
          f"{invalid / n:.1%} invalid); same answers: yes; fast path took {fast / n:.1%}")
    print(f"  reference (phonenumbers parse + is_valid_number + time zone + E.164): {ref_s / n * 1e6:6.2f} us/number")
    print(f"  parse_phone (fast path, phonenumbers for the rest):                 {new_s / n * 1e6:6.2f} us/number")
    print(f"  ratio reference/new: {ref_s / new_s:.1f}x faster")


if __name__ == "__main__":
    main()
