"""Operator console pages for incidents, maintenance and components."""
from flask import Blueprint, render_template

from core.db import db
from incidents import service
from incidents.models import IncidentKind
from ops.auth import role_required
from ops.models import Role

bp = Blueprint("incidents_console", __name__, url_prefix="/ops")


@bp.get("/incidents")
@role_required(Role.VIEWER)
def dashboard():
    incidents = service.list_incidents(db.session, kind=IncidentKind.INCIDENT)
    return render_template("ops/incidents.html", incidents=incidents)
