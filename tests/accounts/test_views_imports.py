"""Console imports: upload and paste run as background jobs; progress page, errors, policy, error CSV."""
import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts.models import Account, AffectedAccount, ImportJob, ImportStatus, RecoveryStatus
from core.db import db
from tests.accounts.factories import HEADER, RECOVERY_HEADER, attach, make_incident
from tests.conftest import csrf_from, make_operator, sign_in
from tests.accounts.uploads import started_job, upload, wait_for_job

GOOD = HEADER + "A1,Ann Lee,(206) 555-0100,ann@example.com,en\nA2,Bruno,,bruno@example.com,es\n"
BAD = GOOD + "A3,Bad Phone,12,nobody@,en\n"


@pytest.fixture(autouse=True)
def _private_instance_folder(app, tmp_path):
    """Uploads and error CSVs go to this test's own folder, never the project's instance/imports/."""
    app.instance_path = str(tmp_path)


def numbers(incident_id: int) -> set[str]:
    return set(db.session.scalars(sa.select(Account.account_number).join(AffectedAccount)
                                  .where(AffectedAccount.incident_id == incident_id)))


def test_uploading_a_good_csv_runs_a_job_that_attaches_the_accounts(app, signed_in):
    client, _ = signed_in
    incident = make_incident()
    job_id = started_job(upload(client, incident.id, GOOD.encode()))
    job = wait_for_job(job_id)
    assert job.status == ImportStatus.DONE, job.message
    assert numbers(incident.id) == {"A1", "A2"}
    page = client.get(f"/ops/imports/{job_id}").get_data(as_text=True)
    assert "Import finished." in page and "data-poll" not in page
    assert "<dt>Newly attached</dt><dd>2</dd>" in page
    # The upload was streamed into the instance folder, private to the service user.
    path = Path(job.source_path)
    assert path.parent == Path(app.instance_path) / "imports" and path.read_bytes() == GOOD.encode()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_bad_row_rejects_the_file_and_the_page_lists_line_column_and_reason(signed_in):
    client, _ = signed_in
    incident = make_incident()
    job = wait_for_job(started_job(upload(client, incident.id, BAD.encode())))
    assert job.status == ImportStatus.REJECTED
    assert numbers(incident.id) == set()
    page = client.get(f"/ops/imports/{job.id}").get_data(as_text=True)
    assert "Nothing was applied" in page
    assert "<tr><td>4</td><td>phone</td><td>&#39;12&#39; is not" in page
    assert "<td>4</td><td>email</td>" in page


def test_skip_invalid_applies_the_good_rows_and_offers_the_rejected_ones_as_csv(signed_in):
    client, _ = signed_in
    incident = make_incident()
    job = wait_for_job(started_job(upload(client, incident.id, BAD.encode(), skip=True)))
    assert job.status == ImportStatus.DONE and job.rows_invalid == 1
    assert numbers(incident.id) == {"A1", "A2"}
    page = client.get(f"/ops/imports/{job.id}").get_data(as_text=True)
    assert "1 invalid row(s) skipped" in page and f"/ops/imports/{job.id}/errors.csv" in page
    csv_response = client.get(f"/ops/imports/{job.id}/errors.csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    body = csv_response.get_data(as_text=True)
    assert body.splitlines()[0] == "line,column,reason,account_number,name,phone,email,locale"
    assert "4,phone," in body and "A3,Bad Phone,12,nobody@,en" in body


def test_a_job_without_errors_has_no_error_file(signed_in):
    client, _ = signed_in
    incident = make_incident()
    job = wait_for_job(started_job(upload(client, incident.id, GOOD.encode())))
    assert client.get(f"/ops/imports/{job.id}/errors.csv").status_code == 404


def test_a_file_that_is_not_utf8_fails_with_a_clear_message(signed_in):
    client, _ = signed_in
    incident = make_incident()
    data = (HEADER + "A1,Jos\u00e9,,jose@example.com,es\n").encode("latin-1")
    job = wait_for_job(started_job(upload(client, incident.id, data)))
    assert job.status == ImportStatus.FAILED
    page = client.get(f"/ops/imports/{job.id}").get_data(as_text=True)
    assert "is not UTF-8 text" in page and "as CSV UTF-8" in page


def test_an_upload_without_a_file_is_refused_beside_the_field(signed_in):
    client, _ = signed_in
    incident = make_incident()
    page = client.get(f"/ops/incidents/{incident.id}/import/accounts")
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/upload",
                           data={"csrf_token": csrf_from(page.get_data(as_text=True))},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert "Choose a CSV file to upload." in response.get_data(as_text=True)


def test_an_upload_without_the_csrf_token_is_refused(app, signed_in):
    client, _ = signed_in
    incident = make_incident()
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/upload",
                           data={"file": (io.BytesIO(GOOD.encode()), "a.csv")}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportJob)) == 0
    assert list((Path(app.instance_path) / "imports").glob("upload-*")) == []  # nothing kept


def test_uploads_above_the_default_body_limit_are_accepted_up_to_the_route_limit(app, signed_in):
    client, _ = signed_in
    incident = make_incident()
    app.config["MAX_CONTENT_LENGTH"] = 1000  # the app-wide limit stays small ...
    app.config["IMPORT_MAX_BYTES"] = 200_000  # ... the upload route has its own
    rows = "".join(f"N{i},Name {i},,n{i}@example.com,en\n" for i in range(2000))
    data = (HEADER + rows).encode()
    assert 1000 < len(data) < 200_000
    job = wait_for_job(started_job(upload(client, incident.id, data)))
    assert job.status == ImportStatus.DONE and job.rows_attached == 2000
    app.config["IMPORT_MAX_BYTES"] = 10_000
    assert upload(client, incident.id, data).status_code == 413


def test_pasted_rows_go_through_the_same_job(signed_in):
    client, _ = signed_in
    incident = make_incident()
    page = client.get(f"/ops/incidents/{incident.id}/import/accounts")
    assert HEADER.strip() in page.get_data(as_text=True)  # the header is prefilled
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/paste", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "text": GOOD})
    job = wait_for_job(started_job(response))
    assert job.status == ImportStatus.DONE and job.filename == "pasted rows"
    assert numbers(incident.id) == {"A1", "A2"}


def test_pasted_recovery_rows_set_states(signed_in):
    client, _ = signed_in
    incident = make_incident()
    attach(incident.id, "A1")
    page = client.get(f"/ops/incidents/{incident.id}/import/recovery")
    response = client.post(f"/ops/incidents/{incident.id}/import/recovery/paste", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "text": RECOVERY_HEADER + "A1,contacts,recovered,10,10,back\nA1,photos,lost,,,gone\n"})
    job = wait_for_job(started_job(response))
    assert job.status == ImportStatus.DONE, job.errors
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryStatus)) == 2


def test_pasting_only_a_header_is_refused_and_the_text_is_kept(signed_in):
    client, _ = signed_in
    incident = make_incident()
    page = client.get(f"/ops/incidents/{incident.id}/import/accounts")
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/paste", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "text": "account_number,name"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Paste the header row and at least one row." in body and "account_number,name</textarea>" in body


def test_a_running_job_page_shows_progress_and_refreshes_itself(signed_in):
    client, operator = signed_in
    from accounts.imports.account_import import AccountImport
    from accounts.imports.service import create_job
    from ops.audit import Actor

    incident = make_incident()
    job = create_job(db.session, spec=AccountImport(), incident_id=incident.id, actor=Actor.cli("t"),
                     filename="big.csv", skip_invalid=False, size_bytes=1000)
    job.status, job.bytes_read, job.rows_read = ImportStatus.VALIDATING, 250, 40
    db.session.commit()
    page = client.get(f"/ops/imports/{job.id}").get_data(as_text=True)
    assert 'id="job" data-poll="2000"' in page  # static/app.js keeps it current (no meta refresh: WCAG 2.2.1)
    assert '<progress id="job-progress" max="1000" value="250">25%</progress>' in page
    assert "40 rows read" in page


def test_a_job_with_no_progress_for_ten_minutes_is_shown_as_interrupted(signed_in):
    client, _ = signed_in
    from datetime import timedelta

    from accounts.imports.account_import import AccountImport
    from accounts.imports.service import create_job
    from core.db import utcnow
    from ops.audit import Actor

    incident = make_incident()
    job = create_job(db.session, spec=AccountImport(), incident_id=incident.id, actor=Actor.cli("t"),
                     filename="lost.csv", skip_invalid=False, size_bytes=1000)
    job.status = ImportStatus.VALIDATING
    job.created_at = job.updated_at = utcnow() - timedelta(minutes=11)  # its last progress
    db.session.commit()
    page = client.get(f"/ops/incidents/{incident.id}/imports").get_data(as_text=True)
    assert "Failed" in page
    db.session.expire_all()
    job = db.session.get(ImportJob, job.id)
    assert job.status == ImportStatus.FAILED and "nothing was applied" in job.message
    assert "data-poll" not in client.get(f"/ops/imports/{job.id}").get_data(as_text=True)


def test_viewers_cannot_import_or_download_error_files(client):
    incident = make_incident()
    viewer = make_operator("viewer")
    sign_in(client, viewer)
    assert client.get(f"/ops/incidents/{incident.id}/import/accounts").status_code == 403
    listing = client.get(f"/ops/incidents/{incident.id}/imports")
    assert listing.status_code == 200
    token = csrf_from(listing.get_data(as_text=True))  # a valid token: the refusal is about the role
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/upload", content_type="multipart/form-data",
                           data={"csrf_token": token, "file": (io.BytesIO(GOOD.encode()), "a.csv")})
    assert response.status_code == 403
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/paste",
                           data={"csrf_token": token, "text": GOOD})
    assert response.status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImportJob)) == 0


def test_anonymous_visitors_are_sent_to_sign_in(client):
    incident = make_incident()
    for url in (f"/ops/incidents/{incident.id}/import/accounts", f"/ops/incidents/{incident.id}/imports",
                "/ops/imports/1"):
        response = client.get(url)
        assert response.status_code == 302 and "/ops/sign-in" in response.headers["Location"]
    response = client.post(f"/ops/incidents/{incident.id}/import/accounts/upload",
                           data={"file": (io.BytesIO(GOOD.encode()), "a.csv")}, content_type="multipart/form-data")
    assert response.status_code == 302


def test_a_large_upload_is_read_by_worker_processes_from_the_background_job(app, signed_in):
    """The console's background thread starts the import's worker processes (accounts.imports.chunks): the
    accounts, then their recovery rows, each file cut into many chunks; a bad row is named on its line."""
    client, _ = signed_in
    app.config.update(IMPORT_WORKERS=2, IMPORT_PARALLEL_MIN_BYTES=0, IMPORT_CHUNK_BYTES=2048)
    incident = make_incident()
    people = "".join(f"W{i},Name {i},+1 206 555 {i:04d},w{i}@example.com,en\n" for i in range(600))
    job = wait_for_job(started_job(upload(client, incident.id, (HEADER + people).encode())))
    assert (job.status, job.rows_attached) == (ImportStatus.DONE, 600), job.message
    rows = "".join(f'W{i},{("contacts", "calendar", "photos")[i % 3]},recovered,10,10,"note, {i}"\n'
                   for i in range(600))
    bad = "W1,contacts,gone,,,\n"
    job = wait_for_job(started_job(upload(client, incident.id, (RECOVERY_HEADER + rows + bad).encode(),
                                          kind="recovery", skip=True)))
    assert (job.status, job.rows_read, job.rows_created) == (ImportStatus.DONE, 601, 600), job.message
    assert [(e["line"], e["column"]) for e in job.errors] == [(602, "state")]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryStatus)) == 600
