"""`flask --app app backup PATH [--portable]` and `flask --app app restore PATH`.

Portable archives (`--portable`, ops/portable.py) restore into either database; the native ones below are
faster and restore into the same kind of database they came from.

Encryption: with BACKUP_AGE_RECIPIENTS set (age public keys), every backup is written in the age format
(age-encryption.org/v1, through pyrage, the Python binding of rage): the plain copy is made in a private
temporary folder, encrypted to PATH and deleted. A restore recognises an age file by its first line and
decrypts it with BACKUP_AGE_IDENTITY (the secret key, which the machine making backups does not need), then
restores it like any other. The `age` command line tool reads the same files.

SQLite: the online backup API (a consistent copy while the app keeps running). PostgreSQL: pg_dump's custom
format, restored with pg_restore. A restore replaces the database only when it is empty or with --force,
and then runs the migrations so an older backup comes up to date."""
import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from glob import glob
from pathlib import Path

import click
import pyrage
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from ops import portable as portable_archive
from core.db import db
from ops import audit
from ops.audit import Actor, as_option
from ops.models import AuditEntry

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
AGE_MAGIC = b"age-encryption.org/v1\n"


class BackupError(click.ClickException):
    """A clear message on the command line, never a traceback."""


# ---- what is where --------------------------------------------------------------------------------

def _dialect() -> str:
    return db.engine.dialect.name


def _describe(url: sa.engine.URL) -> str:
    return url.render_as_string(hide_password=True)


def _kind_of_file(path: Path) -> str | None:
    """'sqlite' or 'postgresql' from the file's first bytes, or None when it is no backup we know."""
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_MAGIC):
        return "postgresql"
    return None


def _pg_tool(name: str) -> str:
    """pg_dump / pg_restore from PATH, else from the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return candidates[-1]
    raise BackupError(f"{name} was not found. Install the PostgreSQL client tools (e.g. postgresql-client).")


def _pg_target(url: sa.engine.URL) -> tuple[str, dict]:
    """A libpq connection string without the password, and an environment carrying it (not on argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict, what: str) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")


def count_rows(session) -> dict[str, int]:
    """Rows per table of ours that exists in the database (tables a migration has not made yet are skipped)."""
    existing = set(sa.inspect(session.connection()).get_table_names())
    return {t.name: session.scalar(sa.select(sa.func.count()).select_from(t))
            for t in db.metadata.sorted_tables if t.name in existing}


def _audit(action: str, path: Path, **after) -> None:
    """Record a backup or restore in the audit log (a restore's entry goes into the restored database), as
    the OS user and host who ran it. A database with no schema yet has no audit log to write to."""
    inspector = sa.inspect(db.engine)
    if not inspector.has_table(AuditEntry.__tablename__):
        return
    entry = audit.record(db.session, actor=Actor.cli(), action=action, entity_type="database",
                         entity_id=db.engine.dialect.name, after={"path": str(path.resolve()), **after})
    # The database may be at an older revision than the code (a backup made before migrating): write the
    # entry's columns that its audit log has.
    db.session.expunge(entry)
    columns = {c["name"] for c in inspector.get_columns(AuditEntry.__tablename__)}
    db.session.execute(AuditEntry.__table__.insert().values({
        c.name: getattr(entry, c.key) for c in AuditEntry.__table__.columns
        if c.name in columns and c.name != "id" and getattr(entry, c.key) is not None}))
    db.session.commit()
    db.session.remove()


# ---- backup -------------------------------------------------------------------------------------

def backup_sqlite(path: Path) -> None:
    """Copy the live database page by page with SQLite's backup API, then make the copy a single file."""
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    raw = db.engine.raw_connection()
    try:
        target = sqlite3.connect(tmp)
        try:
            raw.driver_connection.backup(target)
            # The copy inherits WAL mode; a rollback journal keeps the backup one self-contained file.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        raw.close()
    os.replace(tmp, path)  # never leave a half-written file under the requested name


def backup_postgresql(path: Path) -> None:
    """pg_dump in custom format: consistent (one snapshot) while the app keeps running."""
    tmp = path.with_name(path.name + ".partial")
    target, env = _pg_target(db.engine.url)
    try:
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={tmp}", f"--dbname={target}"],
             env, "pg_dump")
    except BackupError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


# ---- encryption (age) -----------------------------------------------------------------------------

def _recipients() -> list:
    """The age public keys backups are encrypted to (BACKUP_AGE_RECIPIENTS), or [] for plain backups."""
    keys = (current_app.config.get("BACKUP_AGE_RECIPIENTS") or "").replace(",", " ").split()
    out = []
    for key in keys:
        try:
            out.append(pyrage.x25519.Recipient.from_str(key))
        except pyrage.RecipientError as e:
            raise BackupError(f"BACKUP_AGE_RECIPIENTS: {key[:12]}... is not an age public key (age1...): {e}.")
    return out


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(AGE_MAGIC)) == AGE_MAGIC


@contextlib.contextmanager
def _plain_target(path: Path, recipients: list):
    """Where to write the plain backup: PATH itself, or (encrypting) a file in a private temporary folder
    beside it, encrypted to PATH once written and deleted in any case."""
    if not recipients:
        yield path
        return
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".backup-") as folder:  # mode 0700
        plain = Path(folder) / path.name
        yield plain
        tmp = path.with_name(f".{path.name}.age-part")
        try:
            pyrage.encrypt_file(str(plain), str(tmp), recipients)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _decrypted(path: Path):
    """The backup as a plain file: PATH itself, or an age file decrypted into a private temporary folder
    with BACKUP_AGE_IDENTITY (deleted afterwards)."""
    if not is_encrypted(path):
        yield path
        return
    secret = current_app.config.get("BACKUP_AGE_IDENTITY") or ""
    if not secret:
        raise BackupError(f"{path} is encrypted (age). Set BACKUP_AGE_IDENTITY to the secret key "
                          "(AGE-SECRET-KEY-1...) that matches one of the keys it was encrypted to.")
    try:
        identity = pyrage.x25519.Identity.from_str(secret.strip())
    except pyrage.IdentityError as e:
        raise BackupError(f"BACKUP_AGE_IDENTITY is not an age secret key (AGE-SECRET-KEY-1...): {e}.") from None
    with tempfile.TemporaryDirectory(prefix="lifeboat-restore-") as folder:  # mode 0700
        plain = Path(folder) / path.name
        try:
            pyrage.decrypt_file(str(path), str(plain), [identity])
        except pyrage.DecryptError as e:
            raise BackupError(f"{path} could not be decrypted with BACKUP_AGE_IDENTITY: {e}. Is it the key this "
                              "backup was encrypted to, and is the file whole?") from None
        yield plain


@as_option
@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@click.option("--portable", is_flag=True,
              help="Write the documented archive (JSON Lines per table, manifest with checksums) that restores "
                   "into SQLite or PostgreSQL alike (ops/portable.py).")
@with_appcontext
def backup_command(path: Path, force: bool, portable: bool) -> None:
    """Write a consistent copy of the database to PATH, while the app keeps running."""
    if path.exists() and not force:
        raise BackupError(f"{path} already exists; choose another name or pass --force to overwrite it.")
    if not path.parent.is_dir():
        raise BackupError(f"The folder {path.parent} does not exist.")
    recipients = _recipients()
    sealed = f", encrypted (age) to {len(recipients)} key{'' if len(recipients) == 1 else 's'}" if recipients else ""
    rows = count_rows(db.session)
    db.session.remove()
    if portable:
        with _plain_target(path, recipients) as target:
            manifest = portable_archive.write(db.engine, target)
        _audit("backup.write", path, portable=True, rows=sum(t["rows"] for t in manifest["tables"]),
               schema_revision=manifest["schema_revision"], encrypted=bool(recipients))
        click.echo(f"Backed up {_describe(db.engine.url)} to {path}, portable, at schema revision "
                   f"{manifest['schema_revision']} ({sum(t['rows'] for t in manifest['tables'])} rows in "
                   f"{len(manifest['tables'])} tables, {path.stat().st_size} bytes{sealed}).")
        return
    if _dialect() not in ("sqlite", "postgresql"):
        raise BackupError(f"Backups of {_dialect()} databases are not supported.")
    with _plain_target(path, recipients) as target:
        (backup_sqlite if _dialect() == "sqlite" else backup_postgresql)(target)
    _audit("backup.write", path, portable=False, rows=sum(rows.values()), encrypted=bool(recipients))
    click.echo(f"Backed up {_describe(db.engine.url)} to {path} "
               f"({sum(rows.values())} rows in {len(rows)} tables, {path.stat().st_size} bytes{sealed}).")


# ---- restore ------------------------------------------------------------------------------------

def _check_sqlite_backup(path: Path) -> None:
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = source.execute("PRAGMA quick_check").fetchone()[0]
            has_version = source.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'").fetchone()
        finally:
            source.close()
    except sqlite3.DatabaseError as e:
        raise BackupError(f"{path} is not a readable SQLite backup ({e}).") from None
    if ok != "ok":
        raise BackupError(f"{path} is damaged: {ok}")
    if not has_version:
        raise BackupError(f"{path} is a SQLite database but not a Lifeboat backup (it has no schema version).")


def restore_sqlite(path: Path) -> None:
    """Copy the backup over the live database with the backup API (other connections see it at once)."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    raw = db.engine.raw_connection()
    try:
        source.backup(raw.driver_connection)
    finally:
        raw.close()
        source.close()


def _check_pg_backup(path: Path) -> None:
    listing = subprocess.run([_pg_tool("pg_restore"), "--list", str(path)], capture_output=True, text=True)
    if listing.returncode != 0:
        raise BackupError(f"{path} is not a readable pg_dump archive: {listing.stderr.strip()}")
    if " alembic_version" not in listing.stdout:
        raise BackupError(f"{path} is a pg_dump archive but not a Lifeboat backup (it has no schema version).")


def _drop_our_tables() -> None:
    """Empty the schema of our tables first: --clean alone cannot drop a table that a newer table (one
    the older backup does not know) still references, and the result must be exactly the backup."""
    names = [t.name for t in reversed(db.metadata.sorted_tables)] + ["alembic_version"]
    with db.engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))


def restore_postgresql(path: Path) -> None:
    """pg_restore in one transaction (the archive was checked with --list beforehand)."""
    _drop_our_tables()
    target, env = _pg_target(db.engine.url)
    pg_restore = _pg_tool("pg_restore")
    _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
          f"--dbname={target}", str(path)], env, "pg_restore")


@as_option
@click.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that already holds data.")
@with_appcontext
def restore_command(path: Path, force: bool) -> None:
    """Replace the (empty) database with the backup at PATH, then bring its schema up to date."""
    with _decrypted(path) as plain:
        _restore(plain, force, shown=path)


def _restore(path: Path, force: bool, *, shown: Path) -> None:
    from flask_migrate import upgrade

    if portable_archive.is_portable(path):
        return _restore_portable(path, force, shown=shown)
    kind, dialect = _kind_of_file(path), _dialect()
    if kind is None:
        raise BackupError(f"{path} is not a Lifeboat backup (not a SQLite database, a pg_dump archive or a "
                          "portable archive).")
    if kind != dialect:
        raise BackupError(f"{path} is a {kind} backup, but the database is {dialect}; "
                          f"restore it into a {kind} database.")
    if kind == "sqlite":
        _check_sqlite_backup(path)
    else:
        _check_pg_backup(path)
    rows = _rows_to_replace(force)
    # Hand every pooled connection back, so nothing holds locks or stale pages while the data is replaced.
    db.session.remove()
    db.engine.dispose()
    if dialect == "sqlite":
        restore_sqlite(path)
    else:
        restore_postgresql(path)
    db.engine.dispose()
    upgrade()  # an older backup comes up to the current schema
    restored = count_rows(db.session)
    _audit("backup.restore", shown, portable=False, rows=sum(restored.values()), replaced=bool(sum(rows.values())))
    click.echo(f"Restored {shown} into {_describe(db.engine.url)}: "
               f"{sum(restored.values())} rows in {len(restored)} tables"
               f"{' (replacing the data that was there)' if sum(rows.values()) else ''}.")


def _rows_to_replace(force: bool) -> dict[str, int]:
    """The rows in the database now: a restore replaces them only with --force."""
    rows = count_rows(db.session)
    if sum(rows.values()) and not force:
        busy = ", ".join(f"{name} ({n})" for name, n in rows.items() if n)
        raise BackupError(f"The database is not empty: {busy}. Restoring would replace all of it; "
                          "pass --force to do so.")
    return rows


def _restore_portable(path: Path, force: bool, *, shown: Path) -> None:
    """Check the archive whole, empty the database (with --force), migrate it to the archive's revision, load
    the rows in one transaction, then migrate to the current schema."""
    from flask_migrate import downgrade, upgrade

    try:
        manifest = portable_archive.read_manifest(path)
    except portable_archive.PortableError as e:
        raise BackupError(str(e)) from None
    rows = _rows_to_replace(force)
    db.session.remove()
    db.engine.dispose()
    revision = manifest["schema_revision"]
    try:
        downgrade(revision="base")  # nothing of the old data or schema stays behind
        upgrade(revision=revision)
    except Exception as e:  # e.g. a revision this version of Lifeboat does not know
        raise BackupError(f"Cannot prepare the schema at revision {revision}: {e}") from None
    try:
        portable_archive.load(db.engine, path, manifest)
    except portable_archive.PortableError as e:
        raise BackupError(str(e)) from None
    except sa.exc.DBAPIError as e:
        raise BackupError(f"The rows could not be loaded, so nothing was restored: {e.orig}") from None
    db.engine.dispose()
    upgrade()
    restored = count_rows(db.session)
    _audit("backup.restore", shown, portable=True, rows=sum(restored.values()), replaced=bool(sum(rows.values())),
           source=manifest["source"], schema_revision=revision)
    click.echo(f"Restored {shown} ({manifest['source']}, schema revision {revision}) into "
               f"{_describe(db.engine.url)}: {sum(restored.values())} rows in {len(restored)} tables, every "
               f"checksum and count verified{' (replacing the data that was there)' if sum(rows.values()) else ''}.")


def init_app(app) -> None:
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
