"""Hypothesis strategies for hostile CSV files: the accounts and recovery columns, with cells that are
mostly valid (so many imports are accepted and their stored values can be compared) or hostile (NUL,
lone surrogates written as the bytes UTF-8 forbids, controls, formula prefixes, long and confusable
text), odd headers, line endings, BOMs, quoting, encodings and broken bytes."""
import csv
import io

from hypothesis import strategies as st

from tests.fuzz import strategies as hs

ACCOUNT_COLUMNS = ["account_number", "name", "phone", "email", "locale"]
RECOVERY_COLUMNS = ["account_number", "category", "state", "items_total", "items_recovered", "note"]

PHONES = ["", "+12065550100", "(206) 555-0101", "206.555.0102", "+44 20 7946 0958", "+4915123456789",
          "+1 206 555 0103 ext. 9", "+81 3-1234-5678"]
EMAILS = ["", "ann@example.com", "ÉLAN@Example.COM", "x+tag@sub.example.org", "用户@例子.广告", "o'brien@example.ie",
          "a@b", "\"quoted local\"@example.com"]
LOCALES = ["", "en", "es", "es-mx", "EN", "pt_BR", "zh-Hant", "de-DE"]
STATES = ["unknown", "at_risk", "recovering", "recovered", "partially_recovered", "lost"]
COUNTS = ["", "0", "1", "250", "2000000000", "2000000001", "-1", " 7 ", "1e3", "٣", "１", "0x10", "3.0",
          "99999999999999999999999"]


def _mostly(valid: list[str], hostile_size: int = 30):
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid),
                     hs.hostile_text(hostile_size))


def account_numbers(known: list[str] | None = None):
    options = [st.from_regex(r"[A-Z]{1,2}[0-9]{1,6}", fullmatch=True), hs.names(), hs.hostile_text(70)]
    if known:
        options.insert(0, st.sampled_from(known))
    return st.one_of(options)


def account_rows():
    return st.lists(st.tuples(account_numbers(), st.one_of(hs.text(60), hs.hostile_text(210)),
                              _mostly(PHONES), _mostly(EMAILS), _mostly(LOCALES)).map(list),
                    min_size=0, max_size=6)


def recovery_rows(known_numbers: list[str], categories: list[str]):
    cats = categories + [c.upper() for c in categories] + [f" {c} " for c in categories]
    states = STATES + ["LOST", " Recovered ", "partially recovered"]
    return st.lists(st.tuples(account_numbers(known_numbers), _mostly(cats), _mostly(states),
                              _mostly(COUNTS, 12), _mostly(COUNTS, 12), st.one_of(hs.text(60), hs.hostile_text(520)))
                    .map(list), min_size=0, max_size=6)


def headers(columns: list[str]):
    """Mostly a header the importer accepts (in any order, any case, padded); now and then a broken one."""
    good = st.one_of(st.just(list(columns)), st.permutations(columns).map(list),
                     st.just([f" {c.upper()} " for c in columns]))
    bad = st.sampled_from([columns[:-1], columns + ["extra"], columns + [columns[0]], [], [""] * len(columns)])
    return st.integers(0, 9).flatmap(lambda n: bad if n == 9 else good)  # Hypothesis favours 0: the good one


def csv_files(columns: list[str], rows):
    """(bytes of the file, header, rows as written) for one import."""

    @st.composite
    def build(draw):
        header = draw(headers(columns))
        body = draw(rows)
        if draw(st.integers(0, 9)) == 9 and body:  # a row with the wrong number of cells
            body[0] = body[0][: draw(st.integers(0, len(body[0])))]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])),
                            quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
        if header:
            writer.writerow(header)
        # rows follow the header's column order
        order = [columns.index(h.strip().lower()) if h.strip().lower() in columns else 0 for h in header]
        for row in body:
            writer.writerow([row[i] for i in order if i < len(row)] if len(row) == len(columns) else row)
        text = out.getvalue()
        if draw(st.booleans()):
            text = text.rstrip("\r\n")  # no newline at the end
        encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig"] * 2 + ["utf-16", "latin-1"]))
        if encoding.startswith("utf-8"):
            data = text.encode(encoding, "surrogatepass")  # a lone surrogate becomes bytes UTF-8 forbids
        else:
            data = text.encode(encoding, "replace")
        mangle = draw(st.integers(0, 19))  # 0, the value Hypothesis favours, leaves the bytes alone
        if mangle == 19 and data:
            data = data[: draw(st.integers(0, len(data) - 1))]  # cut anywhere, even inside a character
        elif mangle == 18:
            data += draw(st.sampled_from([b"\x00", b"\xff\xfe", b"\xc3", b"\r\r\n", b"\"unterminated", b"\x1a"]))
        return data, header, body

    return build()


def read_back(data: bytes) -> tuple[list[str], list[list[str]]]:
    """The header (normalised) and data rows of an accepted file, read as the import documents: UTF-8 with
    an optional BOM, blank lines skipped."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    rows = list(reader)
    header = [h.strip().lower() for h in rows[0]]
    body = [r for r in rows[1:] if r and not (len(r) == 1 and not r[0].strip())]
    return header, body


# ---- a fixed corpus: inputs that broke importers somewhere, run first on every run (Hypothesis @example) --

_A = "account_number,name,phone,email,locale"
_R = "account_number,category,state,items_total,items_recovered,note"
_SURROGATE = b"\xed\xa0\x80"  # what "\ud800" would be, if UTF-8 allowed it

ACCOUNT_CORPUS = [
    f"{_A}\r\nC1,Ann,,,en\r\n".encode(),
    f"{_A}\rC2,Ann,,,en\r".encode(),
    f"\ufeff{_A}\nC3,Ann,,,en\n".encode(),
    f"{_A}\nC4,Ann\x00Lee,,,en\n".encode(),
    f'{_A}\nC5,"=HYPERLINK(""http://evil.example"")",+12065550100,ann@example.com,en\n'.encode(),
    f'{_A}\nC6,"Line one\nLine two",,,en\n'.encode(),
    f"{_A}\nC7,\u2028Ann\u0085 \u00a0,,,es-mx\n".encode(),
    f"{_A}\nC8,Ann".encode() + _SURROGATE + b",,,en\n",
    f"{_A}\nC9,Ann\n".encode(),
    f"{_A}\nC\x0010,Ann,,,en\n".encode(),
    f"{_A}\n{'D' * 64},Ann,,,en\n{'E' * 65},Bob,,,en\n".encode(),
    f"{_A}\nC11,Ann,+12065550100,ANN@EXAMPLE.COM,es_mx\nC11,Bob,,,en\n".encode(),
    f'{_A}\n"C12 ",É,,ÉLAN@Example.COM,EN\nc12,é,,,en\n'.encode(),
    f'{_A}\nC13,"Ann ""Q"" Lee",(206) 555-0101,,pt_BR\n'.encode(),
    f"{_A}\nC14,\t=1+1,,,en\nC15,@SUM(A1),,,en\nC16,-2+3,,,en\nC17,+cmd,,,en\n".encode(),
    f"{_A}\nC18,{'é' * 200},,,en\nC19,{'é' * 201},,,en\n".encode(),
    f"{_A}\nC20,Ann,,x@".encode() + _SURROGATE + b".example,en\n",
    b"", b"\xef\xbb\xbf", f"{_A}\n".encode(), f"{_A},{_A}\n".encode(), "\n\n\n".encode(),
    f"{_A},extra\x00\nC21,Ann,,,en,x\n".encode(),  # a NUL in a header the error message repeats
]

RECOVERY_CORPUS = [
    f"{_R}\nA1001,contacts,lost,10,0,note\x00x\n".encode(),
    f"{_R}\nA1001,contacts,LOST, 10 , 5 ,=cmd|' /C calc'!A0\n".encode(),
    f"{_R}\nA1001,photos,recovered,2000000000,2000000000,\nA1002,photos,recovered,2000000001,0,\n".encode(),
    f"{_R}\nA1001,contacts,recovered,5,6,\n".encode(),
    f'{_R}\nA1001, CONTACTS ,unknown,,,"multi\nline"\n'.encode(),
    f"{_R}\r\nA1002,contacts,at_risk,1,1,ok\r\nA1002,contacts,lost,1,0,dup\r\n".encode(),
    f"{_R}\nA1003,contacts,lost,,,".encode() + _SURROGATE + b"\n",
    f"{_R}\nnobody,contacts,lost,,,\n".encode(),
    f"{_R}\nA1001,contacts,lost,\u0663,,\nA1002,contacts,lost,\uff11,,\n".encode(),
    f"{_R}\nA1001,contacts,lost,99999999999999999999999,,\n".encode(),
    f"{_R}\nB-7/8,photos,partially_recovered,3,1,{'n' * 500}\nA1004,photos,lost,,,{'n' * 501}\n".encode(),
    f"{_R}\n{'A' * 65},contacts,lost,,,\n".encode(),  # longer than any account number
    f"{_R},extra\x00\nA1001,contacts,lost,,,,x\n".encode(),
]


def corpus(files: list[bytes]):
    """Decorator: run each file of the corpus (with skip_invalid off and on) before the generated ones."""
    from hypothesis import example

    def decorate(test):
        for data in files:
            for skip in (False, True):
                test = example((data, None, None), skip)(test)
        return test

    return decorate
