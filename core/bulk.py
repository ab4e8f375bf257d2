"""Set-based bulk work that runs the same on SQLite and PostgreSQL: temp staging tables and fast loads."""
import itertools
import re
from datetime import timedelta
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

BATCH = 5000


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def dialect_insert(bind):
    """The INSERT construct of the bind's dialect, which has ON CONFLICT (SQLite and PostgreSQL only).
    `bind` is a Connection or Engine, or a Session (its bind is used). The one place that switches on it."""
    if not hasattr(bind, "dialect"):
        bind = bind.get_bind()
    name = bind.dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise RuntimeError(f"Lifeboat needs SQLite or PostgreSQL, not {name}")  # pragma: no cover


def create_stage(conn: Connection, name: str, columns: str, *, key: str | None = None) -> None:
    """A connection-private temp table, e.g. create_stage(conn, "stage_x", "line INTEGER, v TEXT").

    `key`, the name of an INTEGER column whose values are unique and loaded in increasing order (a file's
    line numbers): on SQLite it becomes the table's rowid, so ORDER BY key and lookups by key cost no sort
    and no index (a million staged rows: ~0.3 s less per ORDER BY). PostgreSQL: a plain column, as COPY
    into a table with no index is its fastest load."""
    if key is not None and not is_postgres(conn):
        columns, found = re.subn(rf"(^|,\s*){key} INTEGER(?=,|$)", rf"\g<1>{key} INTEGER PRIMARY KEY", columns)
        assert found == 1, f"no column {key} INTEGER in {columns}"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({columns})")


def unique_or_index(conn: Connection, name: str, table: str, columns: str) -> bool:
    """Index `table` (columns) as UNIQUE and say True; when values repeat, build a plain index instead and say
    False. A file's key that repeats is rare, and finding that out from a failed UNIQUE build costs nothing on
    top of the index the later statements need anyway: the GROUP BY ... HAVING COUNT(*) > 1 that names the
    repeats then runs only when there are some (1,000,000 staged rows: 0.45 s on SQLite, 0.8 s on PostgreSQL).
    PostgreSQL aborts a transaction at a failed statement, so the attempt runs in a savepoint there; SQLite undoes
    just the failed statement and needs none (and a savepoint outside a transaction would take the write lock)."""
    sql = f"CREATE UNIQUE INDEX {name} ON {table} ({columns})"
    try:
        if is_postgres(conn):
            with conn.begin_nested():
                conn.exec_driver_sql(sql)
        else:
            conn.exec_driver_sql(sql)
        return True
    except sa.exc.IntegrityError:
        conn.exec_driver_sql(f"CREATE INDEX {name} ON {table} ({columns})")
        return False


def drop_stage(conn: Connection, name: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


def load(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Append rows to a table: COPY on PostgreSQL, executemany in batches on SQLite. Returns the count."""
    cols = ", ".join(columns)
    n = 0
    if is_postgres(conn):
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n
    sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))})"
    cursor = conn.connection.dbapi_connection.cursor()
    it = iter(rows)
    while batch := list(itertools.islice(it, BATCH)):
        cursor.executemany(sql, batch)
        n += len(batch)
    return n


def run(conn: Connection, sql: str, **params) -> int:
    """Execute one set-based statement; returns the affected row count."""
    return conn.execute(sa.text(sql), params).rowcount


def analyze(conn: Connection, table: str) -> None:
    """PostgreSQL plans temp tables blind (autovacuum never sees them): give it statistics after a load."""
    if is_postgres(conn):
        conn.exec_driver_sql(f"ANALYZE {table}")


def delete_older(session, column, *, now, days: int) -> int:
    """Delete the rows of `column`'s table whose `column` (a time) is more than `days` days before `now`, in
    one statement; 0 days keeps everything. Returns how many went. For the retention tasks."""
    if days <= 0:
        return 0
    return session.execute(sa.delete(column.table).where(column < now - timedelta(days=days))
                           .execution_options(synchronize_session=False)).rowcount
