"""`flask --app app backup PATH` / `restore PATH`: every row survives a round trip into a fresh database."""
import secrets

import pytest
import sqlalchemy as sa

from app import create_app
from core.db import db
from incidents.models import Incident
from tests.conftest import make_operator


@pytest.fixture
def seeded(app, runner, tmp_path):
    """The demo, as realistic data in every table it touches."""
    app.config["DEMO_CREDENTIALS_FILE"] = str(tmp_path / "demo-credentials.txt")
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    db.session.remove()


@pytest.fixture
def fresh_app(database_url, tmp_path):
    """An app on a brand-new, empty database of the same kind as the suite's (SQLite file or PostgreSQL)."""
    if not database_url.startswith("postgresql"):
        yield create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}", "TESTING": True})
        return
    name = f"lb_restore_{secrets.token_hex(4)}"
    admin = sa.create_engine(sa.make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": sa.make_url(database_url).set(database=name)
                        .render_as_string(hide_password=False), "TESTING": True})
    try:
        yield fresh
    finally:
        with fresh.app_context():
            db.session.remove()
            db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def every_row() -> dict:
    """Every row of every table (the schema version included), in a stable order."""
    out = {}
    tables = list(db.metadata.sorted_tables) + [sa.table("alembic_version", sa.column("version_num"))]
    for table in tables:
        order = list(getattr(table.primary_key, "columns", [])) or list(table.c)  # JSON columns cannot be sorted
        out[table.name] = [tuple(r) for r in db.session.execute(sa.select(table).order_by(*order))]
    db.session.remove()
    return out


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

    restored = invoke(fresh_app, "restore", str(backup))
    assert restored.exit_code == 0, restored.output
    assert "Restored" in restored.output
    with fresh_app.app_context():
        assert every_row() == before


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
