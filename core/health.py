"""/healthz and /readyz, for load balancers and orchestrators: no sign-in, no cookie, never cached.

/healthz says the process answers, and touches nothing else (a liveness probe: restart the process when it
fails). /readyz says the database answers and its schema is at the migrations' head (a readiness probe: send
traffic only while it is 200). A web process started before `flask db upgrade` ran, one pointed at a database
that is down, or an old process beside a database already migrated further, answers 503 with a short reason.

They live in core because they need only what core owns: the database handle and the migrations."""
from flask import Blueprint, Response, current_app, g, jsonify
from sqlalchemy.exc import SQLAlchemyError

from core.db import db

bp = Blueprint("health", __name__)


def _answer(response: Response, status: int) -> Response:
    # Probes hit every web process every few seconds: no cookie (not even a refreshed session), no caching.
    g.shared_page = True  # core.web.SessionInterface then saves no session
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    return _answer(Response("ok\n", mimetype="text/plain"), 200)


def _migrations() -> tuple[frozenset[str], frozenset[str]]:
    """(head revisions, every revision) of the migration scripts, read once per app: they do not change while
    the process runs."""
    cached = current_app.extensions.get("lifeboat_migration_heads")
    if cached is None:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
        cached = (frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions()))
        current_app.extensions["lifeboat_migration_heads"] = cached
    return cached


def readiness() -> tuple[bool, str, list[str]]:
    """(ready, reason, the database's revisions): the database answers and is at the migrations' head."""
    from alembic.migration import MigrationContext

    try:
        with db.engine.connect() as conn:
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as e:
        # The kind of error only: its text can carry host names and user names.
        cause = getattr(e, "orig", None) or e
        return False, f"database unreachable ({type(cause).__name__})", []
    heads, known = _migrations()
    revisions = sorted(current)
    if current == heads:
        return True, "ok", revisions
    if not current:
        return False, "database not migrated: run flask db upgrade", revisions
    if current - known:
        return False, "database is at a revision this code does not know (newer code migrated it)", revisions
    return False, "database migrations pending: run flask db upgrade", revisions


@bp.get("/readyz")
def readyz():
    ready, reason, revisions = readiness()
    body = {"status": "ready" if ready else "not ready", "reason": reason, "database_revision": revisions,
            "code_revision": sorted(_migrations()[0])}
    return _answer(jsonify(body), 200 if ready else 503)


def init_app(app) -> None:
    app.register_blueprint(bp)
