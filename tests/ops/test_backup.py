"""`flask --app app backup PATH [--portable]` / `restore PATH`: every row survives a round trip into a fresh
database, of the same kind (native) or either kind (portable); both are audited."""
import contextlib
import hashlib
import io
import json
import os
import secrets
import tarfile

import pytest
import sqlalchemy as sa

from app import create_app
from core.db import db
from incidents.models import Incident
from ops.audit import Actor
from ops.models import AuditEntry
from tests.conftest import make_operator


@pytest.fixture
def seeded(app, runner, tmp_path):
    """The demo, as realistic data in every table it touches."""
    app.config["DEMO_CREDENTIALS_FILE"] = str(tmp_path / "demo-credentials.txt")
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    _webhook_rows()
    db.session.remove()


def _webhook_rows() -> None:
    """An outbound webhook endpoint with a delivery and its attempt log (the demo makes none)."""
    from notifications.outbound import service as webhooks
    from notifications.outbound.models import WebhookAttempt

    endpoint, _secret = webhooks.create(db.session, actor=Actor.cli("test"), allow_private=False, data={
        "url": "https://hooks.example.com/lifeboat", "events": ["incident.created", "offer.accepted"]})
    delivery = webhooks.send_test(db.session, actor=Actor.cli("test"), endpoint_id=endpoint.id)
    db.session.add(WebhookAttempt(delivery_id=delivery.id, attempt=1, status_code=503, latency_ms=12,
                                  error="The endpoint answered 503.", response_excerpt="busy", outcome="retry"))
    db.session.commit()


POSTGRES_ADMIN_URL = os.environ.get("LIFEBOAT_TEST_POSTGRES_ADMIN_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def app_on(kind: str, tmp_path, name: str, admin_url: str = POSTGRES_ADMIN_URL):
    """An app on a new, empty database of `kind` ("sqlite" or "postgresql", made through `admin_url`),
    dropped afterwards."""
    if kind == "sqlite":
        yield create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / (name + '.db')}", "TESTING": True})
        return
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = f"lb_{name}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    except sa.exc.OperationalError as e:
        admin.dispose()
        if os.environ.get("LIFEBOAT_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"the round trip through the other database needs PostgreSQL at {admin_url}: {e}")
    url = sa.make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    other = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    try:
        yield other
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_app(database_url, tmp_path):
    """An app on a brand-new, empty database of the same kind as the suite's (SQLite file or PostgreSQL)."""
    if database_url.startswith("postgresql"):
        admin = sa.make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
        with app_on("postgresql", tmp_path, "restore", admin_url=admin) as fresh:
            yield fresh
    else:
        with app_on("sqlite", tmp_path, "fresh") as fresh:
            yield fresh


def every_row() -> dict:
    """Every row of every table (the schema version included), in a stable order; the audit entries of backups
    and restores themselves are left out (a backup's entry is written after its copy is taken)."""
    out = {}
    tables = list(db.metadata.sorted_tables) + [sa.table("alembic_version", sa.column("version_num"))]
    for table in tables:
        order = list(getattr(table.primary_key, "columns", [])) or list(table.c)  # JSON columns cannot be sorted
        query = sa.select(table).order_by(*order)
        if table.name == AuditEntry.__tablename__:
            query = query.where(~table.c.action.in_(["backup.write", "backup.restore"]))
        out[table.name] = [tuple(r) for r in db.session.execute(query)]
    db.session.remove()
    return out


def audited(action: str) -> list[AuditEntry]:
    entries = list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))
    db.session.remove()
    return entries


def invoke(app, *args):
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


def test_a_backup_restored_into_a_fresh_database_has_every_row(app, runner, seeded, fresh_app, tmp_path):
    before = every_row()
    assert sum(len(rows) for rows in before.values()) > 50

    backup = tmp_path / "lifeboat.backup"
    result = runner.invoke(args=["backup", str(backup)])
    assert result.exit_code == 0, result.output
    assert "Backed up" in result.output

    [entry] = audited("backup.write")  # as the OS user and host who ran it
    assert entry.actor.startswith("cli ") and "@" in entry.actor and entry.after["path"] == str(backup.resolve())

    restored = invoke(fresh_app, "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    assert "Restored" in restored.output
    with fresh_app.app_context():
        assert every_row() == before
        [entry] = audited("backup.restore")  # the restored database records the restore
        assert entry.after["path"] == str(backup.resolve()) and entry.after["portable"] is False


def test_restore_refuses_to_replace_data_without_force(app, runner, seeded, tmp_path):
    backup = tmp_path / "lifeboat.backup"
    runner.invoke(args=["backup", str(backup)])
    before = every_row()
    db.session.execute(sa.delete(Incident).where(Incident.kind == "maintenance"))
    make_operator("viewer")  # commits the change: the database now differs from the backup

    refused = runner.invoke(args=["restore", str(backup)])
    assert refused.exit_code == 1
    assert "not empty" in refused.output and "--force" in refused.output
    assert "Traceback" not in refused.output
    assert every_row() != before

    forced = runner.invoke(args=["restore", str(backup), "--force"])
    assert forced.exit_code == 0, forced.output
    assert "replacing" in forced.output
    assert every_row() == before


def test_restore_brings_an_older_backup_up_to_the_current_schema(fresh_app, tmp_path):
    older = tmp_path / "older.backup"
    for args in (["db", "upgrade"], ["db", "downgrade", "base"], ["backup", str(older)]):
        assert invoke(fresh_app, *args).exit_code == 0
    with fresh_app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:  # back to an empty database, so restore needs no --force
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table.name}"'))

    result = invoke(fresh_app, "restore", str(older))
    assert result.exit_code == 0, result.output
    with fresh_app.app_context():
        names = set(sa.inspect(db.engine).get_table_names())
        assert {t.name for t in db.metadata.sorted_tables} <= names
        assert db.session.scalar(sa.text("SELECT version_num FROM alembic_version"))
        db.session.remove()


def test_backup_does_not_overwrite_an_existing_file_without_force(runner, tmp_path):
    target = tmp_path / "precious.backup"
    target.write_bytes(b"yesterday's backup")
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert target.read_bytes() == b"yesterday's backup"
    assert runner.invoke(args=["backup", str(target), "--force"]).exit_code == 0
    assert target.read_bytes() != b"yesterday's backup"


@pytest.mark.parametrize("content, message", [
    (b"account_number,name\n1,Ana\n", "not a Lifeboat backup"),
    (b"SQLite format 3\x00" + b"\x00" * 200, "not a readable SQLite backup"),
    (b"PGDMP\x01\x0e", "not a readable pg_dump archive"),
])
def test_restore_explains_a_file_that_is_not_a_backup(runner, tmp_path, content, message, database_url):
    path = tmp_path / "suspicious.backup"
    path.write_bytes(content)
    result = runner.invoke(args=["restore", str(path)])
    assert result.exit_code == 1
    is_pg = database_url.startswith("postgresql")
    if content.startswith(b"SQLite") and is_pg or content.startswith(b"PGDMP") and not is_pg:
        message = "restore it into a"  # a backup of the other kind of database
    assert message in result.output
    assert "Traceback" not in result.output


def test_restore_explains_a_sqlite_database_that_is_not_lifeboat(runner, tmp_path, database_url):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (body TEXT)")
    other.close()
    result = runner.invoke(args=["restore", str(path)])
    assert result.exit_code == 1
    expected = "restore it into a" if database_url.startswith("postgresql") else "not a Lifeboat backup"
    assert expected in result.output


def test_restore_explains_a_missing_file(runner, tmp_path):
    result = runner.invoke(args=["restore", str(tmp_path / "nowhere.backup")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


# ---- portable archives ---------------------------------------------------------------------------

def test_a_portable_archive_goes_to_the_other_database_and_back_with_every_row(app, runner, seeded, tmp_path,
                                                                                  database_url):
    """SQLite -> portable -> PostgreSQL -> portable -> SQLite (or the other way round when the suite runs
    on PostgreSQL): every row of every table is the same at each step."""
    before = every_row()
    assert sum(len(rows) for rows in before.values()) > 50
    here = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    there = "sqlite" if here == "postgresql" else "postgresql"

    first = tmp_path / "first.lifeboat.tar.gz"
    result = runner.invoke(args=["backup", str(first), "--portable"])
    assert result.exit_code == 0, result.output
    assert "portable" in result.output
    with tarfile.open(first, "r:gz") as tar:  # the documented layout
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest["format"] == "lifeboat-portable" and manifest["source"] == here
        entry = next(t for t in manifest["tables"] if t["name"] == "incidents")
        lines = tar.extractfile(entry["file"]).read().decode().splitlines()
        assert len(lines) == entry["rows"] == len(before["incidents"])
        assert hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest() == entry["sha256"]
        assert {"name": "created_at", "kind": "datetime"} in entry["columns"]
        assert json.loads(lines[0])["created_at"].endswith("Z")

    second = tmp_path / "second.lifeboat.tar.gz"
    with app_on(there, tmp_path, "there") as other:
        restored = invoke(other, "restore", str(first))
        assert restored.exit_code == 0, restored.output
        assert "every checksum and count verified" in restored.output
        with other.app_context():
            assert every_row() == before
            [entry] = audited("backup.restore")
            assert entry.after["portable"] is True and entry.after["source"] == here
        assert invoke(other, "backup", str(second), "--portable").exit_code == 0

    with app_on(here, tmp_path, "back") as back:
        restored = invoke(back, "restore", str(second))
        assert restored.exit_code == 0, restored.output
        with back.app_context():
            assert every_row() == before
            # New rows still get new ids after rows that came with theirs (PostgreSQL sequences moved on).
            make_operator("viewer", email="after-restore@example.com")
            db.session.remove()


def test_a_damaged_portable_archive_is_refused_before_anything_changes(app, runner, seeded, tmp_path):
    good = tmp_path / "good.tar.gz"
    assert runner.invoke(args=["backup", str(good), "--portable"]).exit_code == 0
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(good, "r:gz") as source, tarfile.open(damaged, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "tables/incidents.jsonl":
                assert b'"impact":"major"' in data
                data = data.replace(b'"impact":"major"', b'"impact":"minor"', 1)  # same length, other meaning
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    before = every_row()
    result = runner.invoke(args=["restore", str(damaged), "--force"])
    assert result.exit_code == 1 and "incidents.jsonl is damaged" in result.output, result.output
    assert "Traceback" not in result.output
    assert every_row() == before
    refused = runner.invoke(args=["restore", str(good)])  # and a good one still needs --force over data
    assert refused.exit_code == 1 and "not empty" in refused.output


def test_a_portable_archive_of_an_older_schema_restores_and_comes_up_to_date(fresh_app, tmp_path):
    older = tmp_path / "older.tar.gz"
    for args in (["db", "upgrade", "0011_priorities"], ["backup", str(older), "--portable"]):
        result = invoke(fresh_app, *args)
        assert result.exit_code == 0, result.output
    with tarfile.open(older, "r:gz") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["schema_revision"] == "0011_priorities"
    assert "notifier_workers" not in {t["name"] for t in manifest["tables"]}  # 0012 made it

    with app_on("sqlite", tmp_path, "newer") as newer:
        result = invoke(newer, "restore", str(older))
        assert result.exit_code == 0, result.output
        assert "schema revision 0011_priorities" in result.output
        with newer.app_context():
            names = set(sa.inspect(db.engine).get_table_names())
            assert {t.name for t in db.metadata.sorted_tables} <= names
            assert db.session.scalar(sa.text("SELECT version_num FROM alembic_version")) != "0011_priorities"
            db.session.remove()


# ---- encrypted backups (age) --------------------------------------------------------------------

@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_an_encrypted_backup_holds_no_plain_byte_and_restores_with_the_secret_key(app, runner, seeded, fresh_app,
                                                                                  tmp_path, portable):
    import pyrage

    key = pyrage.x25519.Identity.generate()
    other_key = pyrage.x25519.Identity.generate()
    app.config["BACKUP_AGE_RECIPIENTS"] = f"{key.to_public()}, {other_key.to_public()}"  # two keys: either opens it
    before = every_row()
    target = tmp_path / "sealed.backup"
    args = ["backup", str(target)] + (["--portable"] if portable else [])
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "encrypted (age) to 2 keys" in result.output
    raw = target.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1\n")
    assert b"SQLite format" not in raw and b"PGDMP" not in raw and b"Sidekick" not in raw
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no plain copy left behind
    assert audited("backup.write")[-1].after["encrypted"] is True

    # Without the secret key, or with a wrong one: a clear refusal, nothing touched.
    refused = invoke(fresh_app, "restore", str(target))
    assert refused.exit_code == 1 and "BACKUP_AGE_IDENTITY" in refused.output
    fresh_app.config["BACKUP_AGE_IDENTITY"] = str(pyrage.x25519.Identity.generate())
    refused = invoke(fresh_app, "restore", str(target))
    assert refused.exit_code == 1 and "could not be decrypted" in refused.output
    fresh_app.config["BACKUP_AGE_IDENTITY"] = str(other_key)
    restored = invoke(fresh_app, "restore", str(target))
    assert restored.exit_code == 0, restored.output
    assert f"Restored {target}" in restored.output
    with fresh_app.app_context():
        assert every_row() == before


def test_a_recipient_that_is_no_age_key_is_a_clear_error(app, runner, tmp_path):
    app.config["BACKUP_AGE_RECIPIENTS"] = "not-a-key"
    result = runner.invoke(args=["backup", str(tmp_path / "x.backup")])
    assert result.exit_code == 1 and "is not an age public key" in result.output
    assert not (tmp_path / "x.backup").exists()
