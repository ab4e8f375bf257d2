"""Console imports as an operator makes them: upload a file to the import form, follow the redirect to the job,
and wait until the background import ends."""
import io
import time

from accounts.imports import jobs
from accounts.models import ImportJob, ImportStatus
from core.db import db
from tests.conftest import csrf_from


def wait_for_job(job_id: int, timeout: float = 30) -> ImportJob:
    """Poll the database until the background import ends."""
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        db.session.expire_all()
        job = db.session.get(ImportJob, job_id)
        if job.status in (ImportStatus.DONE, ImportStatus.REJECTED, ImportStatus.FAILED) \
                and not jobs.is_running_here(job_id):  # the thread has let go of its session too
            return job
        assert time.monotonic() < deadline, f"import {job_id} still {job.status}"
        time.sleep(0.05)


def upload(client, incident_id: int, data: bytes, *, kind: str = "accounts", skip: bool = False,
           filename: str = "accounts.csv"):
    page = client.get(f"/ops/incidents/{incident_id}/import/{kind}")
    assert page.status_code == 200
    form = {"csrf_token": csrf_from(page.get_data(as_text=True)), "file": (io.BytesIO(data), filename)}
    if skip:
        form["skip_invalid"] = "y"
    return client.post(f"/ops/incidents/{incident_id}/import/{kind}/upload", data=form,
                       content_type="multipart/form-data")


def started_job(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    location = response.headers["Location"]
    assert "/ops/imports/" in location
    return int(location.rsplit("/", 1)[1])
