"""Exports in the ops JSON API (ops.exports): the list of datasets, each as cursor-paginated JSON, or one CSV
file. Admins only: every dataset but the incidents' is someone's personal data or the operators' accounts."""
from flask import Response, jsonify, stream_with_context

from core import paging
from core.db import db
from core.errors import ValidationError
from ops import exports
from ops.api import bp, list_args, requires
from ops.auth import current_actor
from ops.models import Role
from ops.openapi import CURSOR, PAGE_LIMIT, obj, operation, query, ref, whole

_NAME = {"name": "dataset", "in": "path", "required": True, "description": "A dataset's name (GET /exports lists them).",
         "schema": {"type": "string", "pattern": whole("[a-z_]{1,40}")}}


@bp.get("/exports")
@requires(Role.ADMIN)
def list_exports():
    return jsonify({"datasets": [{"name": d.name, "description": d.description, "columns": exports.columns(d),
                                  "personal": d.personal} for d in exports.datasets()]})


@bp.get("/exports/<dataset>")
@requires(Role.ADMIN)
def export_page(dataset: str):
    chosen = exports.get(dataset)
    limit, cursor = list_args()
    try:
        rows, next_cursor = exports.page(db.session, chosen, limit=limit, cursor=cursor)
    except paging.BadCursor as e:
        raise ValidationError(str(e), {"cursor": str(e)}) from None
    if not cursor:
        exports.audit_reading(db.session, chosen, actor=current_actor(), via="api")
        db.session.commit()
    return jsonify({"dataset": chosen.name, "rows": rows, "next_cursor": next_cursor, "limit": limit})


@bp.get("/exports/<dataset>.csv")
@requires(Role.ADMIN)
def export_csv(dataset: str):
    chosen = exports.get(dataset)
    exports.audit_reading(db.session, chosen, actor=current_actor(), via="api csv")
    db.session.commit()
    response = Response(stream_with_context(exports.csv_chunks(db.session, chosen)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{chosen.name}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


def openapi_piece() -> dict:
    listed = obj({"datasets": {"type": "array", "items": obj({
        "name": {"type": "string"}, "description": {"type": "string"},
        "columns": {"type": "array", "items": {"type": "string"}}, "personal": {"type": "boolean"}},
        ["name", "description", "columns", "personal"])}}, ["datasets"])
    page = obj({"dataset": {"type": "string"}, "rows": {"type": "array", "items": {"type": "object"}},
                "next_cursor": {"type": ["string", "null"]}, "limit": {"type": "integer"}},
               ["dataset", "rows", "next_cursor", "limit"])
    csv_ok = operation("A dataset as one CSV file (a header row, then a row per record, oldest first)", "exports",
                       "exportCsv", ok=(200, None), params=[_NAME], not_found=True)
    csv_ok["responses"]["200"]["content"] = {"text/csv": {"schema": {"type": "string"}}}
    return {
        "tags": [{"name": "exports"}],
        "schemas": {"ExportList": listed, "ExportPage": page},
        "paths": {
            "/exports": {"get": operation("The datasets that can be exported, with their columns (admins)",
                                          "exports", "listExports", ok=(200, ref("ExportList")))},
            "/exports/{dataset}": {"get": operation(
                "One page of a dataset, oldest first (admins; reading personal data is audited)", "exports",
                "exportPage", ok=(200, ref("ExportPage")), not_found=True,
                params=[_NAME, query("limit", PAGE_LIMIT, "How many per page."),
                        query("cursor", CURSOR, "next_cursor of the previous page.")])},
            "/exports/{dataset}.csv": {"get": csv_ok},
        },
    }
