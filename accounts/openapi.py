"""The affected-accounts and recovery part of the ops API's OpenAPI document (routes in accounts/api.py)."""
from accounts.models import ImportKind, ImportStatus, RecoveryState
from ops.openapi import (
    CATEGORY_KEY, DATE_TIME_OUT, END, LIMIT, OFFSET, enum, nullable, obj, operation, path_id, query, ref,
    text, whole,
)

TAG = "accounts"
TEXT_CSV = {"type": "string", "contentMediaType": "text/csv"}
# An account number in a path: percent-encoded (a "/" travels as %2F), never starting with "/" (that would
# be a "//" in the path), and no control characters (no account number has them).
IN_PATH = r"[^/\x00-\x1f][^\x00-\x1f]*"


def _response(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _closed(schemas: dict) -> dict:
    """Every response property is always present."""
    for s in schemas.values():
        s["required"] = list(s["properties"])
    return schemas


def openapi_piece() -> dict:
    """The affected accounts' and recovery paths and schemas (registered by accounts.wiring)."""
    state = enum(RecoveryState)
    count = {"type": ["integer", "null"], "minimum": 0, "maximum": 2_000_000_000}
    incident_id = path_id("incident_id", "incident")
    account_number = {"name": "account_number", "in": "path", "required": True,
                      "description": "The subscriber's account number (the operator's own id), percent-encoded "
                                     "(a / is sent as %2F).",
                      "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": whole(IN_PATH)}}
    account_number_read = {
        **account_number,
        "description": account_number["description"] + " An account number ending in /recovery cannot be "
                       "read here: that address is its recovery route (PUT only; GET there answers 405).",
        "schema": {**account_number["schema"], "pattern": whole(f"(?![\\s\\S]*/recovery{END}){IN_PATH}")}}
    row_error = obj({"line": {"type": "integer", "description": "CSV line; the header is line 1."},
                     "column": {"type": "string"}, "reason": {"type": "string"}}, ["line", "column", "reason"])
    category_status = obj({
        "category": {"type": "string"}, "state": state, "items_total": count, "items_recovered": count,
        "note": {"type": "string"}, "updated_at": nullable(DATE_TIME_OUT), "updated_by": {"type": "string"}})
    contact = {"account_number": {"type": "string"}, "name": {"type": "string"},
               "phone": {"type": ["string", "null"], "description": "E.164."},
               "email": {"type": ["string", "null"]}, "locale": {"type": "string"}}
    recovery = {"account_number": {"type": "string"}, "overall_state": state,
                "categories": {"type": "array", "items": ref("CategoryStatus")}}
    responses = _closed({
        "ImportJob": obj({
            "id": {"type": "integer"}, "incident_id": {"type": "integer"}, "kind": enum(ImportKind),
            "status": enum(ImportStatus), "filename": {"type": "string"}, "skip_invalid": {"type": "boolean"},
            **{n: {"type": "integer"} for n in ("rows_read", "rows_invalid", "rows_created", "rows_updated",
                                               "rows_unchanged", "rows_attached", "accounts_changed")},
            "errors": {"type": "array", "description": "The first 1000 errors; all are in the error CSV.",
                       "items": obj({**row_error["properties"], "field": {
                           "type": ["string", "null"],
                           "description": "For JSON requests, the field at fault, e.g. accounts[3].phone."}},
                           ["line", "column", "reason", "field"])},
            "error_csv_url": {"type": ["string", "null"],
                              "description": "The rejected rows with their reasons (operator role)."},
            "message": {"type": "string"}, "actor": {"type": "string"}, "created_at": DATE_TIME_OUT,
            "finished_at": nullable(DATE_TIME_OUT),
            "progress": obj({
                "phase": enum(ImportStatus),
                "bytes_read": {"type": "integer"}, "size_bytes": {"type": "integer"},
                "percent": {"type": "integer", "minimum": 0, "maximum": 100,
                            "description": "Of the file read; 100 once the job has ended."},
                "rows_valid": {"type": "integer", "description": "Rows read that passed validation so far."},
                "eta_seconds": {"type": ["integer", "null"],
                                "description": "While validating: the time left at the pace so far."}})}),
        "CategoryStatus": category_status,
        "AccountRecovery": obj(recovery),
        "HistoryEntry": obj({
            "category": {"type": "string"}, "old_state": {"type": ["string", "null"], "enum": [*state["enum"], None]},
            "new_state": state, "items_total": count, "items_recovered": count, "note": {"type": "string"},
            "actor": {"type": "string"}, "import_id": {"type": ["integer", "null"]}, "at": DATE_TIME_OUT}),
        "AffectedAccount": obj({
            **recovery, **contact, "time_zone": {"type": ["string", "null"]}, "sms_opt_out": {"type": "boolean"},
            "email_opt_out": {"type": "boolean"}, "added_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT,
            "history": {"type": "array", "items": ref("HistoryEntry"),
                        "description": "The last 50 changes, newest first."}}),
        "AffectedAccountListItem": obj({
            **contact, "overall_state": state, "added_at": DATE_TIME_OUT, "updated_at": DATE_TIME_OUT,
            "categories": {"type": "object", "additionalProperties": state,
                           "description": "Each category's state, by category key."}}),
        "AffectedAccountList": obj({"affected_accounts": {"type": "array", "items": ref("AffectedAccountListItem")},
                                    "total": {"type": "integer"}, "limit": {"type": "integer"},
                                    "offset": {"type": "integer"}}),
        "RecoverySummary": obj({
            "incident_id": {"type": "integer"}, "affected_accounts": {"type": "integer"},
            "states": obj({s.value: {"type": "integer"} for s in RecoveryState}),
            "categories": {"type": "array", "items": obj({
                "key": {"type": "string"}, "label": {"type": "string"},
                "states": obj({s.value: {"type": "integer"} for s in RecoveryState}),
                "items_total": {"type": "integer"}, "items_recovered": {"type": "integer"}})}}),
        "RecoveryCategoryList": obj({"categories": {"type": "array", "items": obj({
            "key": {"type": "string"}, "label": {"type": "string"}, "position": {"type": "integer"}})}}),
    })
    for s in (responses["RecoverySummary"]["properties"]["states"],
              responses["RecoverySummary"]["properties"]["categories"]["items"],
              responses["RecoverySummary"]["properties"]["categories"]["items"]["properties"]["states"],
              responses["RecoveryCategoryList"]["properties"]["categories"]["items"]):
        s["required"] = list(s["properties"])
    problem = obj({
        "error": obj({"status": {"type": "integer"}, "message": {"type": "string"},
                      "fields": {"type": "object", "additionalProperties": {"type": "string"},
                                 "description": "What to fix, per field (JSON requests): accounts[2].phone."},
                      "rows": {"type": "array", "items": row_error,
                               "description": "The first 1000 invalid rows (CSV requests)."}},
                     ["status", "message"]),
        "job": ref("ImportJob")}, ["error"])
    requests = {
        "AffectedAccountsImport": obj({
            "accounts": {"type": "array", "minItems": 1, "items": obj({
                "account_number": text(64, one_line=True, minLength=1),
                "name": text(200, one_line=True), "phone": nullable(text(64, one_line=True)),
                "email": nullable(text(254, one_line=True)),
                "locale": nullable(text(16, one_line=True, description="A language tag such as en, es or es-MX "
                                                                       "(empty: en).")),
            }, ["account_number"], description=(
                "Each account is then checked as a CSV row of the import: values are stripped; an account "
                "number that is blank, holds a control character (such as a tab) or repeats an earlier one, "
                "and a phone, email or locale that cannot be read, make the row invalid. Invalid rows refuse "
                "the request (422, error.fields names them), or with skip_invalid are skipped."))},
            "skip_invalid": {"type": "boolean", "description": "Apply the valid accounts, skip the others."},
        }, ["accounts"]),
        "RecoveryUpdate": obj({"categories": {"type": "array", "minItems": 1, "items": obj({
            "category": {"type": "string", "minLength": 1, "maxLength": 32,
                         "pattern": whole(r"[ \t]*[A-Za-z][A-Za-z0-9_]{0,31}[ \t]*"),
                         "x-message": "{value!r} is not a category key.",
                         "description": "One of the incident's category keys (any letter case; an unknown one "
                                        "is refused with 422), each once per request."},
            "state": state, "items_total": count,
            "items_recovered": {**count, "description": "At most items_total (422 otherwise)."},
            "note": text(500),
        }, ["category", "state"])}}, ["categories"]),
        "RecoveryCategoriesUpdate": obj({"categories": {
            "type": "array", "minItems": 1, "maxItems": 50,
            "items": {**text(64), "pattern": whole(r"[ \t]*(?:[A-Za-z][A-Za-z0-9_ -]{0,31}[ \t]*)?"),
                      "x-message": "{value!r}: use letters, digits and _ (at most 32), starting with a letter."},
            "allOf": [{"contains": {"type": "string", "pattern": "[A-Za-z]"},
                       "x-message": "Name at least one category."}],
            "description": "Category keys in display order, e.g. [\"contacts\", \"calendar\", \"photos\"]. "
                           "A key is stored in lower case with spaces and - as _; blank ones are skipped. A "
                           "category that accounts already have statuses in cannot be left out (422)."}},
            ["categories"]),
    }

    post = operation("Attach accounts to the incident (CSV or JSON)", TAG, "importAffectedAccounts",
                     ok=(200, ref("ImportJob")), body="AffectedAccountsImport", not_found=True,
                     params=[incident_id, query("skip_invalid", {"type": "boolean", "default": False},
                                                "Apply the valid rows and skip the invalid ones (true or "
                                                "false; 1 and 0 are read the same way). A JSON body's "
                                                "skip_invalid wins.")])
    post["description"] = (
        "Adds or updates subscribers and attaches them to the incident, with exactly the rules of "
        "`flask --app app accounts import` and the console upload (one import job). Send either `text/csv` "
        "(header `account_number,name,phone,email,locale` required, UTF-8, BOM allowed) or JSON. By default "
        "nothing is applied when any row is invalid (422 lists the errors); with `skip_invalid` the valid rows "
        "are applied and the rejected ones go to the job's error CSV. Bodies are limited by the server's "
        "MAX_CONTENT_LENGTH (16 MB by default) when imported inline. A CSV body larger than that, sent chunked, "
        "or sent with `Prefer: respond-async` is streamed to disk (up to IMPORT_MAX_BYTES, 1 GB by default, "
        "any number of rows) and imported in the background: the answer is 202 Accepted with the job, its "
        "address in `Location`; GET it for `progress` (bytes and rows, percent, ETA) and the outcome. The import "
        "is idempotent, so sending the same accounts again changes nothing; `Idempotency-Key` is therefore not "
        "used on this route.")
    post["requestBody"]["content"]["text/csv"] = {"schema": {
        **TEXT_CSV, "description": "account_number,name,phone,email,locale with a header row."}}
    post["responses"] |= {
        "202": {"description": "A large CSV (or Prefer: respond-async): the import job, started in the background.",
                "headers": {"Location": {"description": "The job's address (GET /imports/{job_id}).",
                                         "schema": {"type": "string"}},
                            "Preference-Applied": {"description": "respond-async, when it was asked for.",
                                                   "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": ref("ImportJob")}}},
        "400": _response("The CSV cannot be read (not UTF-8, header missing or wrong), or the JSON is malformed.",
                         problem),
        "413": _response("The body is larger than the server accepts.", ref("Error")),
        "415": _response("The body was neither application/json nor text/csv.", ref("Error")),
        "422": _response("Invalid rows and skip_invalid off: nothing was applied (error.rows for CSV, "
                         "error.fields for JSON); or wrong JSON fields or query parameters.", problem)}

    list_op = operation("List affected accounts (or export them all as CSV)", TAG, "listAffectedAccounts",
                        ok=(200, ref("AffectedAccountList")), not_found=True, params=[
                            incident_id,
                            query("limit", LIMIT, "Page size."), query("offset", OFFSET, "Rows to skip."),
                            query("state", state, "Only accounts in this overall state."),
                            query("category", CATEGORY_KEY, "With category_state (422 without it): one of the "
                                                            "incident's category keys (422 otherwise)."),
                            query("category_state", state, "With category (422 without it): only accounts in "
                                                           "this state there."),
                            query("q", {"type": "string", "maxLength": 254},
                                  "An exact account number, phone (any format) or email; blank: everyone.")])
    list_op["description"] = ("With `Accept: text/csv` the answer is the full CSV export "
                              "(as /affected-accounts.csv; filters do not apply).")
    list_op["responses"]["200"]["content"]["text/csv"] = {"schema": TEXT_CSV}
    export = operation("Export every affected account with its current states (streamed CSV)", TAG,
                       "exportAffectedAccounts", ok=(200, None), params=[incident_id], not_found=True)
    export["responses"]["200"] |= {
        "description": "CSV: account_number,name,phone,email,locale,overall_state, then <category>_state, "
                       "<category>_items_total, <category>_items_recovered for each category.",
        "content": {"text/csv": {"schema": TEXT_CSV}},
        "headers": {"Content-Disposition": {"description": "attachment; filename=...",
                                            "schema": {"type": "string"}}}}
    errors_csv = operation("The rejected rows of an import, with line, column and reason", TAG, "getImportErrors",
                           ok=(200, None), params=[path_id("job_id", "import job")], not_found=True)
    errors_csv["responses"]["200"] |= {"description": "CSV: line,column,reason, then the row's columns.",
                                       "content": {"text/csv": {"schema": TEXT_CSV}}}
    put_recovery = operation("Set an account's recovery status in some categories", TAG, "updateRecovery",
                             ok=(200, ref("AccountRecovery")), body="RecoveryUpdate",
                             params=[incident_id, account_number], not_found=True)
    put_recovery["description"] = ("Same rules and history as the recovery CSV import. Idempotent: sending the "
                                   "same statuses again records no new history.")
    return {
        "tags": [{"name": TAG, "description": "Affected accounts, their recovery status, imports and exports."}],
        "schemas": {**responses, "ImportProblem": problem, **requests},
        "paths": {
            "/incidents/{incident_id}/affected-accounts": {"post": post, "get": list_op},
            "/incidents/{incident_id}/affected-accounts.csv": {"get": export},
            "/incidents/{incident_id}/accounts/{account_number}": {"get": operation(
                "An affected account: contact details, recovery per category, last 50 changes", TAG,
                "getAffectedAccount", ok=(200, ref("AffectedAccount")), params=[incident_id, account_number_read],
                not_found=True)},
            "/incidents/{incident_id}/accounts/{account_number}/recovery": {"put": put_recovery},
            "/accounts/{account_number}/erase": {"post": operation(
                "Erase a subscriber's personal data everywhere it lives (admins; cannot be undone): counts, "
                "recovery statistics, offer liability and opt-outs stay right; audited with counts only",
                TAG, "eraseAccount", ok=(200, obj({"erased": {"type": "object", "additionalProperties": {
                    "type": "integer", "minimum": 0}}}, ["erased"])), params=[account_number], not_found=True,
                idempotent=True)},
            "/incidents/{incident_id}/recovery-summary": {"get": operation(
                "Affected accounts by overall state and by category (the console dashboard's counts)", TAG,
                "getRecoverySummary", ok=(200, ref("RecoverySummary")), params=[incident_id], not_found=True)},
            "/incidents/{incident_id}/recovery-categories": {
                "get": operation("The incident's data categories", TAG, "listRecoveryCategories",
                                 ok=(200, ref("RecoveryCategoryList")), params=[incident_id], not_found=True),
                "put": operation("Choose the incident's data categories (in use ones cannot be removed)", TAG,
                                 "setRecoveryCategories", ok=(200, ref("RecoveryCategoryList")),
                                 body="RecoveryCategoriesUpdate", params=[incident_id], not_found=True)},
            "/imports/{job_id}": {"get": operation(
                "An import job's progress and outcome (also for console and CLI imports)", TAG, "getImport",
                ok=(200, ref("ImportJob")), params=[path_id("job_id", "import job")], not_found=True)},
            "/imports/{job_id}/errors.csv": {"get": errors_csv},
        },
    }
