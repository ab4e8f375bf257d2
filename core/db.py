"""The database handle, typed base model and column types shared by all domains."""
from datetime import datetime, timezone

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (a callable default, never evaluated at import)."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """Stores naive UTC, returns aware UTC: identical on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime in UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def str_enum(enum_cls, length: int = 32) -> sa.Enum:
    """A portable VARCHAR enum column holding the enum's values."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


# SQLite has one writer at a time. A transaction that has read (holds a snapshot) and then wants to write cannot
# wait for the write lock: SQLite answers SQLITE_BUSY at once (the busy handler is not called when waiting could
# deadlock, or when another connection committed since the snapshot, SQLITE_BUSY_SNAPSHOT), and busy_timeout does
# not help. So every transaction that writes takes the lock when it begins, and waits there for the busy timeout:
# - pysqlite opens a transaction only before the first INSERT/UPDATE/DELETE/REPLACE (reads before it run in
#   autocommit and hold no lock, so readers, the public pages' too, never wait); isolation_level "IMMEDIATE"
#   makes that implicit BEGIN a BEGIN IMMEDIATE. This matters where the first write goes to a TEMP staging table
#   while reading the main database (imports, offer issue, recovery edits): it used to begin a deferred
#   transaction that read first and wrote to the main database later.
# - A SELECT ... FOR UPDATE (row locks on PostgreSQL; SQLAlchemy drops the clause on SQLite) says the transaction
#   will write what it reads: on SQLite it begins the transaction IMMEDIATE too (see _sqlite_for_update), and so
#   does a SAVEPOINT taken outside a transaction (see _sqlite_savepoint).
# - Work that writes only TEMP tables for a long time (an import's first phase) opens a deferred transaction
#   itself (begin_deferred), so it does not hold the lock other writers need.
# The busy timeout is how long a writer waits for another's transaction before it fails. Imports, broadcasts and
# offer runs are single transactions (all or nothing), and at the design scale they hold the lock for tens of
# seconds (measured on a busy 2-core machine, 1,000,000 accounts: a broadcast 37 s, an offer issue 34 s, its
# announcement 58 s, a 1,000,000-row recovery import 64 s): waiting that long is better than failing, above all
# for the notifier, which records each send and reads the shared budget. Readers never wait (WAL).
SQLITE_BUSY_TIMEOUT_MS = 60_000


def _is_sqlite(dbapi_connection) -> bool:
    import sqlite3

    return isinstance(dbapi_connection, sqlite3.Connection)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: WAL for concurrent readers beside one writer, enforced foreign keys, and write transactions
    that wait for the lock (see above)."""
    if _is_sqlite(dbapi_connection):
        dbapi_connection.isolation_level = "IMMEDIATE"
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


@event.listens_for(Engine, "checkout")
def _sqlite_immediate_again(dbapi_connection, connection_record, connection_proxy):
    """SQLAlchemy resets pysqlite's isolation_level to "" (deferred) after a connection ran with the AUTOCOMMIT
    isolation level: make it IMMEDIATE again before the connection is used."""
    if _is_sqlite(dbapi_connection) and dbapi_connection.isolation_level == "":
        dbapi_connection.isolation_level = "IMMEDIATE"


@event.listens_for(Engine, "before_cursor_execute")
def _sqlite_for_update(conn, cursor, statement, parameters, context, executemany):
    """SQLite: a SELECT ... FOR UPDATE outside a transaction begins one IMMEDIATE, so what it reads cannot change
    before this transaction writes (as the row locks do on PostgreSQL), and the write that follows cannot fail."""
    if conn.dialect.name != "sqlite":
        return
    compiled = getattr(context, "compiled", None)
    if compiled is None or getattr(compiled.statement, "_for_update_arg", None) is None:
        return
    dbapi_connection = conn.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


@event.listens_for(Engine, "savepoint")
def _sqlite_savepoint(conn, name):
    """SQLite: a SAVEPOINT outside a transaction would start one of its own, deferred, and its RELEASE would
    commit it: what the savepoint wrote would commit at once, whatever the caller's transaction did next. Begin
    the caller's transaction first (IMMEDIATE: a savepoint is taken around a write), so the savepoint nests in it."""
    if conn.dialect.name != "sqlite":
        return
    dbapi_connection = conn.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def begin_deferred(conn) -> None:
    """Open `conn`'s transaction without taking SQLite's write lock, for work that writes only TEMP tables
    (staging) for a while: an import's first phase must not hold up the notifier and the console. A no-op on
    PostgreSQL, and when a transaction is already open. Writing a main table in this transaction later may
    fail at once with "database is locked": commit first."""
    dbapi_connection = conn.connection.dbapi_connection
    if _is_sqlite(dbapi_connection) and not dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN DEFERRED")


def begin_immediate(conn) -> None:
    """Open `conn`'s transaction with SQLite's write lock taken now (waiting up to the busy timeout), for work
    that reads what it is about to write, or that changes the schema of a main table: pysqlite opens a
    transaction only before INSERT, UPDATE, DELETE and REPLACE, so a DROP or CREATE INDEX before the first of
    them would commit on its own. A no-op on PostgreSQL (its DDL is transactional, and the connection's next
    statement opens the transaction), and when a transaction is already open."""
    dbapi_connection = conn.connection.dbapi_connection
    if _is_sqlite(dbapi_connection) and not dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def init_migrate(app) -> None:
    """Alembic through Flask-Migrate; the schema is only ever created by migrations."""
    from pathlib import Path

    from flask_migrate import Migrate

    Migrate(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"),
            render_as_batch=True, compare_type=True, render_item=_render_item)


def _render_item(type_, obj, autogen_context):
    """Write our column types into migrations as plain SQLAlchemy types, so migrations never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    if type_ == "type" and isinstance(obj, sa.Enum):
        return f"sa.String(length={obj.length})"
    return False
