"""Hypothesis strategies for hostile text and JSON, shared by the fuzz tests."""
import json

from hypothesis import strategies as st

# Single characters and short strings that have broken text handling somewhere before.
SPECIALS = [
    "\x00", "\ud800", "\udfff", "\udc80",  # NUL; lone surrogates (not encodable as UTF-8)
    "\ufeff", "\ufffe", "\uffff", "\U0010ffff", "\ufffd",  # BOM, non-characters, replacement character
    "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029",  # line ends of every kind
    "\t", "\x01", "\x1b", "\x7f", "\x9b",  # controls (C0, C1)
    "\u200b", "\u200d", "\u202e", "\u2066", "\u0301", "\u180e",  # zero-width, bidi override, combining mark
    "=", "+", "-", "@", "\t=", "=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil.example\")",  # CSV formulas
    "é", "É", "e\u0301", "ß", "ẞ", "SS", "İ", "i", "ı", "I", "ǅ", "Ω", "Ω", "ﬁ", "𝔘", "😀", "👩‍👩‍👧",
    "'", '"', "\\", ",", ";", "<", ">", "&", "%s", "{0}", "${x}", "{{x}}", "../", "\u00a0", " ",
    "NULL", "null", "None", "true", "0", "-0", "1e309", "NaN", "0x10", "٣",  # values that look like others
]

# Letters that compare equal when case or Unicode normalisation is ignored: they make duplicate names.
CONFUSABLE = "ÉéEeßẞSsİIiıΩΩωǅǄǆ"


def text(max_size: int = 40, *, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Arbitrary Unicode mixed with the specials above (lone surrogates only when `surrogates`)."""
    specials = [s for s in SPECIALS if surrogates or not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]
    atom = st.one_of(st.sampled_from(specials), st.text(max_size=6), st.characters(codec="ascii"))
    return st.lists(atom, max_size=max(1, max_size // 3)).map("".join).map(lambda s: s[:max_size])


def long_text() -> st.SearchStrategy[str]:
    """Very long strings (one repeated atom), beyond every length limit."""
    return st.builds(lambda atom, n: (atom * n)[:n], st.sampled_from(["x", "é", "😀", "\x00", "=1+", "a,b\n"]),
                     st.sampled_from([255, 256, 4097, 65_537, 300_000]))


def hostile_text(max_size: int = 40, *, surrogates: bool = True) -> st.SearchStrategy[str]:
    return st.one_of(text(max_size, surrogates=surrogates), long_text(),
                     st.text(alphabet=CONFUSABLE, min_size=1, max_size=3))


# Names that come back, exactly or in another case or form: a few draws are enough to repeat one.
COLLIDING = ["É", "é", "Ω", "ω", "Ω", "Straße", "STRASSE", "İstanbul", "istanbul", "Ǆ", "ǅ", "Ä", "ä", "ﬁle", "file"]


def names() -> st.SearchStrategy[str]:
    """Short names that collide: repeated exactly, or in another case or Unicode form."""
    return st.one_of(st.sampled_from(COLLIDING), st.text(alphabet=CONFUSABLE, min_size=1, max_size=2), text(20))


INTS = [0, 1, -1, 2**31 - 1, 2**31, -2**31 - 1, 2**53 + 1, 2**63 - 1, 2**63, -2**63 - 1, 2**64, 10**30, 10**400]


def integers() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-5, 50), st.sampled_from(INTS), st.integers())


def json_values(depth: int = 3) -> st.SearchStrategy:
    """Any JSON value (and NaN/Infinity, which Python's json writes and reads)."""
    leaves = st.one_of(st.none(), st.booleans(), integers(), st.floats(), hostile_text(30))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(text(10), inner, max_size=4)),
                        max_leaves=8)


def from_schema(schema: dict, name: str = "") -> st.SearchStrategy:
    """Values shaped like a (self-contained) JSON Schema, but with hostile strings and numbers, and now
    and then a value of the wrong type: most pass the API's schema check and reach the code behind it."""
    wrong = json_values()
    if "enum" in schema:
        return st.one_of(st.sampled_from(schema["enum"]), st.sampled_from(schema["enum"]), hostile_text(20))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return st.one_of([from_schema(s, name) for s in schema[key]])
    types = schema.get("type", "object")
    types = types if isinstance(types, list) else [types]
    options = []
    for t in types:
        if t == "string":
            size = schema.get("maxLength", 60)
            if schema.get("format") == "date-time":
                options.append(st.sampled_from(DATE_TIMES))
            elif name in ("name", "category", "categories", "key", "code", "codes"):
                options.append(names())
                options.append(names())
            options.append(text(min(size, 60)))
            options.append(text(size))
        elif t == "integer":
            options.append(integers())
        elif t == "number":
            options.append(st.one_of(integers(), st.floats(), st.sampled_from(["1e309", "NaN", "-0", "1" * 5000])))
        elif t == "boolean":
            options.append(st.booleans())
        elif t == "null":
            options.append(st.none())
        elif t == "array":
            items = schema.get("items", {})
            options.append(st.lists(from_schema(items, name), min_size=schema.get("minItems", 0),
                                    max_size=max(schema.get("minItems", 0), 5)))
        elif t == "object":
            props = schema.get("properties", {})
            required = [k for k in schema.get("required", []) if k in props]
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):  # {"<component id>": status, ...}
                options.append(st.dictionaries(st.one_of(st.integers(-1, 10).map(str), st.sampled_from(
                    ["99999999999999999999", "0" * 40, "１", "٣", "1\n"])), from_schema(extra), max_size=3))
            else:
                options.append(st.fixed_dictionaries(
                    {k: from_schema(props[k], k) for k in required},
                    optional={k: from_schema(v, k) for k, v in props.items() if k not in required}))
    strategy = st.one_of(options) if options else wrong
    return st.one_of(strategy, strategy, strategy, strategy, wrong)


DATE_TIMES = ["2026-11-26T21:00:00Z", "2026-11-26T21:00:00+14:00", "0001-01-01T00:00:00+00:00",
              "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59.999999+00:00", "1970-01-01T00:00:00Z",
              "2026-02-29T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26", "2026-11-26T21:00:00",
              "2026-11-26T21:00:00+24:00", "+275760-09-13T00:00:00Z", ""]


def raw_json_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not what a JSON encoder writes: deep nesting, huge numbers, odd bytes, BOMs."""
    deep = st.builds(lambda n, o, c: (o * n + c * n).encode(), st.sampled_from([100, 1000, 5000, 50_000]),
                     st.sampled_from(["["]), st.just("]"))
    deep_obj = st.builds(lambda n: ('{"a":' * n + "1" + "}" * n).encode(), st.sampled_from([1000, 5000]))
    fixed = st.sampled_from([
        b"", b" ", b"null", b"[]", b"\"x\"", b"1", b"{", b"{}}", b'{"a":1,"a":2}', b"\xef\xbb\xbf{}",
        b"\xff\xfe{\x00}\x00", b'{"name": "\xff\xfe"}', b'{"name": "\xed\xa0\x80"}', b'{"message": NaN}',
        b'{"position": 1e999999}', b'{"position": ' + b"9" * 5000 + b"}", b'{"name": "\\ud800"}',
        b'{"name": "\\u0000"}', b"\x00", b'{"\\ud800": 1}', b'{"message": "' + b"\\" * 3 + b'"}',
    ])
    return st.one_of(deep, deep_obj, fixed, json_values().map(lambda v: json.dumps(v).encode()))


def exemplar(schema: dict, fill: str, name: str = ""):
    """A body shaped like `schema` with every property present and every free-text string set to `fill`
    (enums, dates and ids get ordinary values), so `fill` reaches as far into the service as it can."""
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return exemplar(schema[key][0], fill, name)
    types = schema.get("type", "object")
    t = next((x for x in types if x != "null"), "null") if isinstance(types, list) else types
    if t == "string":
        if schema.get("format") == "date-time":
            return "2036-01-02T03:00:00Z" if name.endswith(("until", "_to")) else "2036-01-01T03:00:00Z"
        if schema.get("minLength") == schema.get("maxLength") == 3:  # a currency
            return "USD"
        return fill
    if t in ("integer", "number"):
        return 1
    if t == "boolean":
        return False
    if t == "array":
        return [exemplar(schema.get("items", {}), fill, name)] * max(1, schema.get("minItems", 1))
    if t == "object":
        if isinstance(schema.get("additionalProperties"), dict):
            return {}
        return {k: exemplar(v, fill, k) for k, v in schema.get("properties", {}).items()}
    return None


# Values each string field of each body gets once, on every run, before the generated bodies.
FILLS = ["\ud800", "\x00", "É", "É", "İstanbul", "İstanbul", "=HYPERLINK(\"http://evil.example\")", "a\r\nb", "\ufeff",
         "x" * 100_001]


def corpus_bodies(schema: dict) -> list[bytes]:
    """The fixed bodies for an operation: its exemplar with each of FILLS (the names twice: the second one is
    a duplicate, which a case-insensitive check in Python and in SQL may see differently), 5,000-deep nesting, a 5,000-digit number, NaN and invalid UTF-8."""
    bodies = [json.dumps(exemplar(schema, fill)).encode() for fill in FILLS]
    bodies += [b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
               json.dumps(exemplar(schema, "x")).encode().replace(b"1", b"9" * 5000, 1),
               b'{"name": NaN, "position": Infinity}', b'{"name": "\xff\xfe"}', b"\xef\xbb\xbf{}"]
    return bodies
