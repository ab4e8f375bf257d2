"""Export everything the service holds: one dataset per kind of record, each as JSON pages (cursor-paginated,
`GET /api/ops/v1/exports/<name>`), as one streamed CSV file for spreadsheets (`.../<name>.csv`) and from the
command line (`flask export NAME [-o FILE] [--format csv|jsonl]`).

Domains register their datasets (`register`) from their wiring: a dataset is a select of named columns with
an integer id to page by, oldest first. Values are written as the portable backup writes them
(ops.portable.encode): date-times in UTC ISO 8601 with a Z, JSON as JSON (in a CSV cell: its JSON text),
booleans as true/false. Every CSV cell goes through core.csvout (no formulas). Reading a dataset that holds
personal data is audited (once per reading: its first page, or the whole file)."""
import enum
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from core import csvout, paging
from core.errors import NotFound
from ops import portable
from ops.audit import Actor, record

BATCH = 1000


@dataclass(frozen=True)
class Dataset:
    name: str  # as in the URL and the CLI: "messages", "offer_grants"
    description: str  # one line for the README, the API's list and `flask export --help`
    select: Callable[[], sa.Select]  # the columns, labelled as exported; its first column is the id to page by
    personal: bool = True  # holds personal data: reading it is audited
    transform: Callable[[dict], dict] | None = None  # a last look at each row (e.g. masking a queued code)

    def id_column(self, query: sa.Select):
        return query.selected_columns[0]


def columns_except(model, *names: str) -> list:
    """A model's table columns without `names` (secrets, leases, paths on disk): what a dataset selects."""
    return [c for c in model.__table__.columns if c.name not in names]


_datasets: dict[str, Dataset] = {}


def register(dataset: Dataset) -> None:
    """Add a dataset (a new app built in the same process registers again: the latest wins)."""
    _datasets[dataset.name] = dataset


def datasets() -> list[Dataset]:
    return sorted(_datasets.values(), key=lambda d: d.name)


def get(name: str) -> Dataset:
    try:
        return _datasets[name]
    except KeyError:
        raise NotFound(f"No dataset {name!r}. Choose one of: {', '.join(sorted(_datasets))}.") from None


def columns(dataset: Dataset) -> list[str]:
    return [c.name for c in dataset.select().selected_columns]


def _row(dataset: Dataset, query: sa.Select, row) -> dict:
    out = {}
    for column, value in zip(query.selected_columns, row):
        kind = column.type.impl if isinstance(column.type, sa.types.TypeDecorator) else column.type
        value = portable.encode(value, portable.kind_of(kind))
        out[column.name] = value.value if isinstance(value, enum.Enum) else value
    return dataset.transform(out) if dataset.transform else out


def page(session, dataset: Dataset, *, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
    """One JSON page, oldest first, after `cursor` (paging.BadCursor for one we did not give)."""
    query = dataset.select()
    got = paging.page(session, query, dataset.id_column(query), limit=limit, cursor=cursor, newest_first=False,
                      scalars=False)
    return [_row(dataset, query, r) for r in got.rows], got.next_cursor


def rows(session, dataset: Dataset, *, batch: int = BATCH) -> Iterator[dict]:
    """Every row, oldest first, read in batches by id (memory stays flat)."""
    query = dataset.select()
    id_column = dataset.id_column(query)
    after = None
    while True:
        q = query if after is None else query.where(id_column > after)
        chunk = session.execute(q.order_by(id_column).limit(batch)).all()
        if not chunk:
            return
        for r in chunk:
            yield _row(dataset, query, r)
        after = chunk[-1][0]


def csv_chunks(session, dataset: Dataset, *, chunk_rows: int = 500) -> Iterator[str]:
    """The dataset as CSV text (a header row, then a row per record), in chunks for streaming."""
    names = columns(dataset)
    buffer = io.StringIO()
    out = csvout.writer(buffer)
    out.writerow(names)
    for n, row in enumerate(rows(session, dataset), 1):
        out.writerow([_cell(row[c]) for c in names])
        if n % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def jsonl_chunks(session, dataset: Dataset, *, chunk_rows: int = 500) -> Iterator[str]:
    """The dataset as JSON Lines (one object per record)."""
    lines = []
    for row in rows(session, dataset):
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=False))
        if len(lines) >= chunk_rows:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def _cell(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def audit_reading(session, dataset: Dataset, *, actor: Actor, via: str) -> None:
    """A reading of personal data is in the audit log (the caller commits)."""
    if dataset.personal:
        record(session, actor=actor, action="export.read", entity_type="dataset", entity_id=dataset.name,
               label=dataset.name, after={"via": via})
