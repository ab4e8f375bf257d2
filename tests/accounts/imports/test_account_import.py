"""Importing affected accounts: validation, policy, idempotency, change history."""
import csv

import pytest
import sqlalchemy as sa

from accounts.models import Account, AccountChange, AffectedAccount, ImportStatus
from core.db import db
from tests.accounts.factories import HEADER, count_rows, make_incident, run_import
from tests.conftest import make_operator

GOOD = HEADER + (
    "A1,Ann Lee,(206) 555-0100,Ann@Example.com,en\n"
    "A2,Bruno Díaz,+34 612 345 678,,es_es\n"
    "A3,Chen,,chen@example.com,\n"
)


def accounts():
    return {a.account_number: a for a in db.session.scalars(sa.select(Account))}


def test_valid_rows_become_accounts_in_e164_with_zone_and_language(app):
    incident = make_incident()
    job = run_import(incident.id, GOOD)
    assert job.status == ImportStatus.DONE
    assert (job.rows_read, job.rows_created, job.rows_attached, job.rows_invalid) == (3, 3, 3, 0)
    a = accounts()
    assert a["A1"].phone == "+12065550100" and a["A1"].time_zone == "America/Los_Angeles"
    assert a["A1"].email == "ann@example.com"
    assert a["A2"].phone == "+34612345678" and a["A2"].language == "es-ES" and a["A2"].email is None
    assert a["A3"].phone is None and a["A3"].language == "en" and a["A3"].time_zone is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AffectedAccount)) == 3


def test_a_bom_and_crlf_line_ends_are_accepted(app):
    incident = make_incident()
    job = run_import(incident.id, ("\ufeff" + GOOD).replace("\n", "\r\n"))
    assert job.status == ImportStatus.DONE and job.rows_created == 3


def test_the_same_file_twice_changes_nothing(app):
    incident = make_incident()
    run_import(incident.id, GOOD)
    before = [(a.id, a.phone, a.email, a.updated_at) for a in accounts().values()]
    job = run_import(incident.id, GOOD)
    assert (job.rows_created, job.rows_updated, job.rows_unchanged, job.rows_attached) == (0, 0, 3, 0)
    assert [(a.id, a.phone, a.email, a.updated_at) for a in accounts().values()] == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AccountChange)) == 0


def test_a_changed_phone_updates_the_account_and_is_recorded(app):
    incident = make_incident()
    run_import(incident.id, GOOD)
    job = run_import(incident.id, GOOD.replace("(206) 555-0100", "+1 212 555 0199"))
    assert (job.rows_updated, job.rows_unchanged) == (1, 2)
    a1 = accounts()["A1"]
    assert a1.phone == "+12125550199" and a1.time_zone == "America/New_York"
    change = db.session.scalar(sa.select(AccountChange))
    assert (change.field, change.old_value, change.new_value) == ("phone", "+12065550100", "+12125550199")
    assert change.source == f"import {job.id}"


def test_an_invalid_row_rejects_the_whole_file_and_lists_line_column_reason(app):
    incident = make_incident()
    text = GOOD + "A4,Bad Phone,12,nobody@,en\n" + "A1,Again,,,\n"
    job = run_import(incident.id, text)
    assert job.status == ImportStatus.REJECTED
    assert "Nothing was applied" in job.message
    assert accounts() == {}
    errors = {(e["line"], e["column"]) for e in job.errors}
    assert errors == {(5, "phone"), (5, "email"), (6, "account_number")}
    assert any("already appears on line 2" in e["reason"] for e in job.errors)


def test_a_repeated_account_number_alone_rejects_the_file_and_skip_invalid_keeps_the_first(app):
    incident = make_incident()
    text = GOOD + "A1,Again,,,\n"
    job = run_import(incident.id, text)
    assert job.status == ImportStatus.REJECTED
    assert [(e["line"], e["column"]) for e in job.errors] == [(5, "account_number")]
    assert "'A1' already appears on line 2" in job.errors[0]["reason"]
    assert accounts() == {}
    job = run_import(incident.id, text, skip_invalid=True)
    assert (job.status, job.rows_created, job.rows_invalid) == (ImportStatus.DONE, 3, 1)
    assert accounts()["A1"].name == "Ann Lee"


def test_skip_invalid_applies_the_good_rows_and_writes_an_error_csv(app):
    incident = make_incident()
    text = GOOD + "A4,Bad Phone,12,,en\n"
    job = run_import(incident.id, text, skip_invalid=True)
    assert job.status == ImportStatus.DONE
    assert (job.rows_created, job.rows_invalid) == (3, 1)
    with open(job.error_csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["line"] == "5" and rows[0]["column"] == "phone" and rows[0]["account_number"] == "A4"


def test_a_missing_header_column_fails_with_a_clear_message(app):
    incident = make_incident()
    job = run_import(incident.id, "account_number,name,phone\nA1,Ann,\n")
    assert job.status == ImportStatus.FAILED
    assert "missing: email, locale" in job.message


def test_a_file_that_is_not_utf8_fails_with_a_clear_message(app):
    incident = make_incident()
    job = run_import(incident.id, (HEADER + "A1,Jos\xe9,,,en\n").encode("latin-1"))
    assert job.status == ImportStatus.FAILED
    assert "UTF-8" in job.message
    assert accounts() == {}


def test_a_row_with_the_wrong_number_of_columns_is_reported(app):
    incident = make_incident()
    job = run_import(incident.id, HEADER + "A1,Ann,,\n")
    assert job.status == ImportStatus.REJECTED
    assert job.errors[0]["line"] == 2 and "Expected 5 columns, found 4" in job.errors[0]["reason"]


def test_cli_import_shows_progress_and_reports(app, runner, tmp_path):
    incident = make_incident()
    path = tmp_path / "accounts.csv"
    path.write_text(GOOD, encoding="utf-8")
    result = runner.invoke(args=["accounts", "import", str(incident.id), str(path)])
    assert result.exit_code == 0, result.output
    assert "done" in result.output and "created: 3" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text(GOOD + "A4,X,12,,en\n", encoding="utf-8")
    result = runner.invoke(args=["accounts", "import", str(incident.id), str(bad)])
    assert result.exit_code == 1
    assert "line 5, phone" in result.output
    result = runner.invoke(args=["accounts", "import", "999", str(path)])
    assert result.exit_code != 0 and "No incident with id 999" in result.output


def test_an_operator_is_not_needed_but_the_import_is_audited(app):
    from ops.models import AuditEntry

    make_operator("admin")
    incident = make_incident()
    job = run_import(incident.id, GOOD)
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "accounts.import"))
    assert entry.after["job"] == job.id and entry.after["rows_created"] == 3


def test_unsupported_locales_are_refused_with_the_line_the_column_and_the_supported_list(app):
    incident = make_incident()
    job = run_import(incident.id, HEADER + "A1,Ann,,,es-mx\nA2,Bea,,,fr\nA3,Cal,,,xx\nA4,Dan,,,EN\n")
    assert job.status == ImportStatus.REJECTED and count_rows(Account) == 0  # all or nothing
    assert [(e["line"], e["column"]) for e in job.errors] == [(3, "locale"), (4, "locale")]
    assert "'fr' is not a language subscribers can be written to in: use one of en, es" in job.errors[0]["reason"]


def test_a_large_load_rebuilds_the_lookup_indexes_once_and_leaves_them_all_in_place(app, monkeypatch):
    from accounts.imports import account_import

    monkeypatch.setattr(account_import, "REBUILD_ABOVE", 2)  # "large" from two new accounts, for the test
    incident = make_incident()
    job = run_import(incident.id, HEADER + "R1,Ann,+12065550101,ann@example.com,en\n"
                                           "R2,Bob,+12065550102,bob@example.com,es\n")
    assert job.status == ImportStatus.DONE and job.rows_created == 2 and job.rows_attached == 2
    inspector = sa.inspect(db.engine)
    names = {i["name"] for table in ("accounts", "affected_accounts") for i in inspector.get_indexes(table)}
    assert {"ix_accounts_phone", "ix_accounts_email", "ix_affected_accounts_account_id",
            "ix_affected_accounts_incident_state"} <= names
    # And they are used again: a lookup by phone finds the account.
    assert db.session.scalar(sa.select(Account.account_number).where(Account.phone == "+12065550102")) == "R2"


def test_a_large_load_that_fails_after_dropping_the_lookup_indexes_leaves_them_in_place(app, monkeypatch):
    """The indexes are dropped inside the import's transaction, so a failure before its commit (here: the
    snapshot write fails, as a full disk would) takes the drops back with the rows."""
    from accounts.imports import account_import

    def disk_full(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT INTO recovery_snapshots", {}, Exception("database or disk is full"))

    monkeypatch.setattr(account_import, "REBUILD_ABOVE", 2)
    monkeypatch.setattr(account_import, "take_snapshot", disk_full)
    incident = make_incident()
    with pytest.raises(sa.exc.OperationalError):
        run_import(incident.id, HEADER + "R1,Ann,+12065550101,ann@example.com,en\n"
                                         "R2,Bob,+12065550102,bob@example.com,es\n")
    db.session.rollback()
    assert count_rows(Account) == 0
    inspector = sa.inspect(db.engine)
    names = {i["name"] for table in ("accounts", "affected_accounts") for i in inspector.get_indexes(table)}
    assert {"ix_accounts_phone", "ix_accounts_email", "ix_affected_accounts_account_id",
            "ix_affected_accounts_incident_state"} <= names


def test_existing_and_new_accounts_in_one_file_are_each_attached_once_to_this_incident_only(app):
    def attached(incident_id):
        return sorted(db.session.scalars(
            sa.select(Account.account_number).join(AffectedAccount, AffectedAccount.account_id == Account.id)
            .where(AffectedAccount.incident_id == incident_id)))

    first, second = make_incident(), make_incident()
    run_import(first.id, HEADER + "X1,Xena,,x1@example.com,en\nX2,Xavi,,x2@example.com,es\nX3,Xu,,,\n")
    job = run_import(second.id, HEADER + "X1,Xena,,x1@example.com,en\nN1,Nia,,,\nX2,Xavi,,x2@example.com,es\n"
                                         "N2,Noor,,,\n")
    assert (job.rows_created, job.rows_unchanged, job.rows_attached) == (2, 2, 4)
    assert attached(second.id) == ["N1", "N2", "X1", "X2"]
    assert attached(first.id) == ["X1", "X2", "X3"]  # the other incident's list is left alone
    job = run_import(second.id, HEADER + "N1,Nia,,,\nX3,Xu,,,\nN3,Nell,,,\n")
    assert (job.rows_created, job.rows_unchanged, job.rows_attached) == (1, 2, 2)
    assert attached(second.id) == ["N1", "N2", "N3", "X1", "X2", "X3"]
    assert count_rows(AffectedAccount) == 3 + 6
