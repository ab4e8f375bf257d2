"""Cursor pagination (keyset on the id): the next page starts after the last id seen, so pages stay right
while rows are added and every page costs one indexed range read, however deep. The cursor is opaque to
clients ("next_cursor" in an answer, `cursor=` in the next request)."""
import base64
import binascii
from dataclasses import dataclass

import sqlalchemy as sa


class BadCursor(ValueError):
    """The cursor was not one this service gave out."""


def encode(last_id: int, newest_first: bool) -> str:
    return base64.urlsafe_b64encode(f"{'d' if newest_first else 'a'}{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str, newest_first: bool) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("This cursor is not one this API gave out: use next_cursor from an answer as it is.") from None
    if raw[:1] != ("d" if newest_first else "a") or not raw[1:].isdigit() or len(raw) > 20:
        raise BadCursor("This cursor is not one this API gave out: use next_cursor from an answer as it is.")
    return int(raw[1:])


@dataclass(frozen=True)
class Page:
    rows: list
    next_cursor: str | None  # None on the last page


def page(session, query: sa.Select, id_column, *, limit: int, cursor: str | None = None,
         newest_first: bool = True, scalars: bool = True) -> Page:
    """One page of `query` ordered by `id_column` (descending when `newest_first`), after `cursor`."""
    if cursor:
        last = decode(cursor, newest_first)
        query = query.where(id_column < last if newest_first else id_column > last)
    query = query.order_by(id_column.desc() if newest_first else id_column.asc()).limit(limit + 1)
    rows = list(session.scalars(query) if scalars else session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    if not more or not rows:
        return Page(rows, None)
    last_row = rows[-1]
    last_id = getattr(last_row, id_column.key) if hasattr(last_row, id_column.key) else last_row[0]
    return Page(rows, encode(last_id, newest_first))
