"""Portable backups: the whole database as one documented archive that restores into SQLite or PostgreSQL,
whichever the target is (`flask backup PATH --portable`, `flask restore PATH`; see ops/backup.py).

The archive is a gzip-compressed tar file holding:
- `manifest.json`: {"format": "lifeboat-portable", "version": 1, "created_at", "source" (the dialect),
  "schema_revision" (Alembic's), "tables": [{"name", "file", "rows", "sha256", "columns": [{"name",
  "kind"}]}]}, tables in an order where every table comes after the tables it references;
- `tables/<name>.jsonl`: one JSON object per row, keyed by column name, in primary-key order.

Values are plain JSON, typed by each column's `kind`: `int`, `float`, `bool`, `text`, `json` (the value as it
is), `datetime` (ISO 8601 in UTC, ending in "Z"), `date` (ISO 8601), `decimal` (a string), `bytes` (base64).
A reader in any language can load the files; `sha256` is the file's digest, so a damaged or edited archive is
refused before anything is written.

Rows are read from the tables as the database has them (reflected, not the code's models), so a backup made
by an older version restores as it was: the target is first migrated to the archive's schema revision, the
rows go in there, in one transaction, and then the migrations bring the schema up to date. The restore
checks every file's digest and row count first and, after loading, the rows in each table."""
import base64
import datetime as dt
import decimal
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path

import sqlalchemy as sa

from core.db import begin_deferred

FORMAT, VERSION = "lifeboat-portable", 1
BATCH = 5000
GZIP_MAGIC = b"\x1f\x8b"


class PortableError(Exception):
    """The archive cannot be written or restored; the message says why."""


def kind_of(column_type) -> str:
    """How a column's values are written: see the module's text."""
    for types, kind in ((sa.Boolean, "bool"), (sa.DateTime, "datetime"), (sa.Date, "date"),
                        (sa.Integer, "int"), (sa.Float, "float"), (sa.Numeric, "decimal"), (sa.JSON, "json"),
                        (sa.LargeBinary, "bytes")):
        if isinstance(column_type, types):
            return kind
    return "text"


def encode(value, kind: str):
    if value is None:
        return None
    if kind == "datetime":
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"  # naive values are stored in UTC (core.db)
    if kind == "date":
        return value.isoformat()
    if kind == "decimal":
        return str(value)
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    return value  # int, float, bool, text, and json (the JSON type hands back the decoded value)


def decode(value, kind: str, column: sa.Column):
    if value is None:
        return None
    if kind == "datetime":
        moment = dt.datetime.fromisoformat(value.removesuffix("Z"))
        return moment.replace(tzinfo=dt.timezone.utc) if getattr(column.type, "timezone", False) else moment
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "decimal":
        return decimal.Decimal(value)
    if kind == "bytes":
        return base64.b64decode(value)
    return value


def _reflect(conn) -> sa.MetaData:
    meta = sa.MetaData()
    meta.reflect(bind=conn)
    return meta


def _revision(conn) -> str | None:
    try:
        return conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    except sa.exc.DBAPIError:
        return None


def write(engine, path: Path) -> dict:
    """Write the archive to `path` (via a temporary file, so a failure leaves nothing under that name);
    returns the manifest. One read transaction: the rows are one consistent snapshot on PostgreSQL (REPEATABLE
    READ), and on SQLite the read transaction holds its snapshot (WAL)."""
    tmp = path.with_name(path.name + ".partial")
    with tempfile.TemporaryDirectory() as work, engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        else:
            begin_deferred(conn)  # pysqlite would not begin for reads: hold one snapshot (WAL), no lock
        meta = _reflect(conn)
        manifest = {"format": FORMAT, "version": VERSION,
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                    .replace("+00:00", "Z"),
                    "source": conn.dialect.name, "schema_revision": _revision(conn), "tables": []}
        for table in meta.sorted_tables:
            if table.name == "alembic_version":  # the manifest's schema_revision; a restore migrates to it
                continue
            kinds = {c.name: kind_of(c.type) for c in table.columns}
            order = list(table.primary_key.columns) or [c for c in table.columns if kinds[c.name] != "json"]
            file = Path(work) / f"{table.name}.jsonl"
            digest, rows = hashlib.sha256(), 0
            with file.open("wb") as out:
                result = conn.execution_options(yield_per=BATCH).execute(sa.select(table).order_by(*order))
                for row in result.mappings():
                    line = (json.dumps({k: encode(v, kinds[k]) for k, v in row.items()}, ensure_ascii=False,
                                       separators=(",", ":")) + "\n").encode("utf-8")
                    digest.update(line)
                    out.write(line)
                    rows += 1
            manifest["tables"].append({"name": table.name, "file": f"tables/{table.name}.jsonl", "rows": rows,
                                       "sha256": digest.hexdigest(),
                                       "columns": [{"name": c.name, "kind": kinds[c.name]} for c in table.columns]})
        conn.rollback()
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            data = json.dumps(manifest, indent=2).encode("utf-8")
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(data), int(dt.datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(data))
            for entry in manifest["tables"]:
                tar.add(Path(work) / f"{entry['name']}.jsonl", arcname=entry["file"])
    os.replace(tmp, path)
    return manifest


def is_portable(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def read_manifest(path: Path) -> dict:
    """The archive's manifest, after checking that every table file is there with its digest and row count."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            try:
                manifest = json.load(tar.extractfile("manifest.json"))
            except KeyError:
                raise PortableError(f"{path} has no manifest.json: it is not a Lifeboat portable backup.") from None
            if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                raise PortableError(f"{path} is not a Lifeboat portable backup of version {VERSION}.")
            for entry in manifest["tables"]:
                digest, rows = hashlib.sha256(), 0
                member = tar.extractfile(entry["file"])
                for line in member:
                    digest.update(line)
                    rows += 1
                if digest.hexdigest() != entry["sha256"] or rows != entry["rows"]:
                    raise PortableError(f"{path}: {entry['file']} is damaged (its checksum or row count does not "
                                        "match the manifest); nothing was restored.")
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        raise PortableError(f"{path} is not a readable portable backup ({e}).") from None
    return manifest


def load(engine, path: Path, manifest: dict) -> dict[str, int]:
    """Insert the archive's rows into the database, just migrated to the archive's revision, in one
    transaction (the rows its migrations seeded are replaced by the archive's); returns the rows now in each
    table. Table files must match the tables there."""
    with engine.begin() as conn, tarfile.open(path, "r:gz") as tar:
        meta = _reflect(conn)
        for table in reversed(meta.sorted_tables):  # rows a migration seeded (one generation row, ...)
            if table.name in {entry["name"] for entry in manifest["tables"]}:
                conn.execute(table.delete())
        for entry in manifest["tables"]:
            table = meta.tables.get(entry["name"])
            if table is None:
                raise PortableError(f"The archive has a table {entry['name']} that the schema at revision "
                                    f"{manifest['schema_revision']} does not.")
            kinds = {c["name"]: c["kind"] for c in entry["columns"]}
            unknown = set(kinds) - set(table.c.keys())
            if unknown:
                raise PortableError(f"{entry['name']}: columns {sorted(unknown)} are not in the schema.")
            batch = []
            for line in tar.extractfile(entry["file"]):
                row = json.loads(line)
                batch.append({k: decode(v, kinds[k], table.c[k]) for k, v in row.items()})
                if len(batch) >= BATCH:
                    conn.execute(table.insert(), batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn, meta)
        counts = {entry["name"]: conn.scalar(sa.select(sa.func.count()).select_from(meta.tables[entry["name"]]))
                  for entry in manifest["tables"]}
        wrong = {name: (n, entry["rows"]) for entry in manifest["tables"]
                 for name, n in [(entry["name"], counts[entry["name"]])] if n != entry["rows"]}
        if wrong:
            raise PortableError(f"Row counts after loading differ from the manifest: {wrong}; nothing was restored.")
    return counts


def _advance_sequences(conn, meta: sa.MetaData) -> None:
    """Rows came with their ids: move each serial column's sequence past the largest (PostgreSQL)."""
    for table in meta.sorted_tables:
        for column in table.primary_key.columns:
            sequence = conn.scalar(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                   {"t": table.name, "c": column.name})
            if sequence:
                conn.execute(sa.text(f'SELECT setval(:s, coalesce((SELECT max("{column.name}") FROM '
                                     f'"{table.name}"), 0) + 1, false)'), {"s": sequence})
