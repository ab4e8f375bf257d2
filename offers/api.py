"""Offer routes of the ops JSON API: define, edit and close a program, issue it, follow it, export the
accepted grants, fulfil and revoke grants.

Amounts are given in major units (100 or "100.00") and answered both ways (value and value_minor)."""
from flask import Response, jsonify, url_for

from core.db import db
from core.errors import ValidationError
from offers import grants, notify, service
from offers.models import GrantState, OfferKind, OfferProgram, ProgramStatus
from offers.serializers import grant_json
from ops.api import bp, created, iso, json_body, parse_datetime, transactional
from ops.auth import current_actor
from ops.openapi import (
    DATE_TIME_IN, DATE_TIME_OUT, END, enum, nullable, obj, operation, path_id, ref, text, whole,
)
from accounts.models import RecoveryState
from incidents.models import Impact


def program_json(p: OfferProgram, stats: dict | None = None) -> dict:
    stats = stats or grants.dashboard(db.session, p.id)
    return {
        "id": p.id, "incident_id": p.incident_id, "name": p.name, "description": p.description,
        "kind": p.kind.value, "months": p.months, "value": f"{p.value_minor / 100:.2f}", "value_minor": p.value_minor,
        "currency": p.currency, "eligible_states": list(p.eligible_states),
        "exclude_states": list(p.exclude_states or []), "min_impact": p.min_impact,
        "valid_until": iso(p.valid_until), "budget_cap_minor": p.budget_cap_minor, "status": p.status.value,
        "not_issued": p.not_issued, "remind_days_before": p.remind_days_before, "reminded_at": iso(p.reminded_at),
        "announced_at": iso(p.announced_at),
        "closed_at": iso(p.closed_at), "closed_by": p.closed_by, "close_reason": p.close_reason,
        "created_by": p.created_by, "created_at": iso(p.created_at), "updated_at": iso(p.updated_at),
        "counts": stats["counts"], "liability_minor": stats["liability_minor"],
        "preview": service.preview(db.session, p),
    }


@bp.post("/incidents/<int:incident_id>/offer-programs")
@transactional
def create_offer_program(incident_id: int):
    data = json_body("OfferProgramCreate")
    fields: dict = {}
    data["valid_until"] = parse_datetime(fields, "valid_until", data.get("valid_until"))
    if fields:
        raise ValidationError("Please correct the highlighted fields.", fields)
    program = service.create_program(db.session, actor=current_actor(), incident_id=incident_id, data=data)
    return created(program_json(program), url_for("api.get_offer_program", program_id=program.id))


@bp.get("/offer-programs/<int:program_id>")
def get_offer_program(program_id: int):
    return jsonify(program_json(service.get_program(db.session, program_id)))


@bp.patch("/offer-programs/<int:program_id>")
@transactional
def update_offer_program(program_id: int):
    data = json_body("OfferProgramPatch")
    if "valid_until" in data:
        fields: dict = {}
        data["valid_until"] = parse_datetime(fields, "valid_until", data["valid_until"])
        if fields:
            raise ValidationError("Please correct the highlighted fields.", fields)
    program = service.update_program(db.session, actor=current_actor(), program_id=program_id, data=data)
    return jsonify(program_json(program))


@bp.post("/offer-programs/<int:program_id>/close")
@transactional
def close_offer_program(program_id: int):
    data = json_body("OfferProgramClose")
    result = service.close_program(db.session, actor=current_actor(), program_id=program_id,
                                   reason=data["reason"], expire_open=data.get("expire_open", False))
    return jsonify({"already_closed": result["already_closed"], "expired": result["expired"],
                    "program": program_json(result["program"])})


@bp.get("/offer-programs/<int:program_id>/accepted.csv")
def export_offer_grants(program_id: int):
    text = grants.export_csv(db.session, program_id)
    grants.record_export(db.session, actor=current_actor(), program_id=program_id, via="api")
    db.session.commit()
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="offer-{program_id}-accepted.csv"',
        "Cache-Control": "no-store"})


@bp.post("/offer-programs/<int:program_id>/issue")
@transactional
def issue_offer_program(program_id: int):
    return jsonify(service.issue(db.session, actor=current_actor(), program_id=program_id))


@bp.post("/offer-programs/<int:program_id>/announce")
@transactional
def announce_offer_program(program_id: int):
    return jsonify({"queued": notify.announce(db.session, actor=current_actor(), program_id=program_id)})


@bp.post("/offer-programs/<int:program_id>/fulfil")
@transactional
def fulfil_offer_grants(program_id: int):
    data = json_body("OfferFulfil")
    return jsonify(grants.mark_fulfilled(db.session, actor=current_actor(), program_id=program_id,
                                         codes=data["codes"]))


@bp.post("/offer-grants/<int:grant_id>/revoke")
@transactional
def revoke_offer_grant(grant_id: int):
    data = json_body("OfferRevoke")
    return jsonify(grant_json(grants.revoke(db.session, actor=current_actor(), grant_id=grant_id,
                                            reason=data["reason"])))


def openapi_piece() -> dict:
    """The offers' paths and schemas of the ops API document (registered by offers.wiring)."""
    count = {"type": "integer", "minimum": 0}
    states = {"type": "array", "items": enum(RecoveryState), "uniqueItems": True}
    amount = r"[0-9]{1,10}(?:\.[0-9]{1,2})?"  # the lookahead below keeps out "0", "0.00" and the like
    money = {"type": ["number", "string"], "exclusiveMinimum": 0, "maximum": float(service.MONEY_MAX),
             "pattern": whole(f"(?![0.]*{END}){amount}"),
             "x-message": f"Must be a positive amount of at most {service.MONEY_MAX} with at most two decimals, "
                          f"e.g. 100 or \"100.00\".",
             "description": f"Major units, e.g. 100 or \"100.00\": more than 0, at most {service.MONEY_MAX}, at "
                            f"most two decimals (more decimals in a number are refused with 422)."}
    no_cap = {"pattern": whole(f"(?:(?![0.]*{END}){amount})?")}  # "" (like null in a patch): no cap
    currencies = sorted(service.CURRENCIES)
    per_state = obj({s.value: count for s in GrantState}, [s.value for s in GrantState])
    liability = obj({k: count for k in ("offered", "accepted", "fulfilled")}, ["offered", "accepted", "fulfilled"])
    preview = obj({k: count for k in ("eligible", "new", "would_issue", "over_budget", "liability_minor")},
                  ["eligible", "new", "would_issue", "over_budget", "liability_minor"])
    program = {
        "id": {"type": "integer"}, "incident_id": {"type": "integer"}, "name": {"type": "string"},
        "description": {"type": "string"}, "kind": enum(OfferKind), "months": {"type": ["integer", "null"]},
        "value": {"type": "string"}, "value_minor": count, "currency": {"type": "string"},
        "eligible_states": states, "exclude_states": states,
        "min_impact": {"type": ["string", "null"], "enum": [*enum(Impact)["enum"], None]},
        "valid_until": DATE_TIME_OUT, "budget_cap_minor": {"type": ["integer", "null"]},
        "status": enum(ProgramStatus), "not_issued": count, "remind_days_before": {"type": ["integer", "null"]},
        "reminded_at": nullable(DATE_TIME_OUT), "announced_at": nullable(DATE_TIME_OUT),
        "closed_at": nullable(DATE_TIME_OUT),
        "closed_by": {"type": ["string", "null"]}, "close_reason": {"type": ["string", "null"]},
        "created_by": {"type": "string"}, "created_at": DATE_TIME_OUT, "updated_at": nullable(DATE_TIME_OUT),
        "counts": per_state, "liability_minor": liability, "preview": preview}
    grant = {"id": {"type": "integer"}, "program_id": {"type": "integer"}, "account_id": {"type": "integer"},
             "code": {"type": "string", "pattern": "^[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}$"},
             "state": enum(GrantState), "offered_at": DATE_TIME_OUT, "accepted_at": nullable(DATE_TIME_OUT),
             "fulfilled_at": nullable(DATE_TIME_OUT), "revoked_at": nullable(DATE_TIME_OUT),
             "revoke_reason": {"type": ["string", "null"]}}
    program_id = path_id("program_id", "offer program")
    create = {
        "name": text(200, blank=False),
        "description": text(5000, description="Shown to subscribers."),
        "kind": enum(OfferKind), "value": money,
        "currency": {"type": "string",
                     "pattern": whole("|".join("".join(f"[{c}{c.lower()}]" for c in code) for code in currencies)),
                     "x-message": f"Choose one of: {', '.join(currencies)}.",
                     "description": f"One of {', '.join(currencies)} (any letter case)."},
        "months": {"type": "integer", "minimum": 1, "maximum": 24,
                   "description": "free_months only (default 1); `value` is what they are worth."},
        "eligible_states": {**states, "minItems": 1,
                            "description": "Accounts with ANY category in one of these states."},
        "exclude_states": {**states, "description": "...and NO category in one of these states (a state cannot "
                                                   "be both eligible and excluded: 422)."},
        "min_impact": enum(Impact),
        "valid_until": {**DATE_TIME_IN, "description": "In the future (422 otherwise). " + DATE_TIME_IN["description"]},
        "budget_cap": {**money, **no_cap, "description": "Stop issuing when value x live grants would exceed it ("
                                                         "\"\": no cap). " + money["description"]},
        "remind_days_before": {"type": ["integer", "null"], "minimum": 0, "maximum": 90, "default": 3,
                               "description": "Remind unanswered offers this many days before valid_until "
                                              "(once); null: no automatic reminder."}}
    patch = {**create, "months": {**nullable(create["months"]), "description": "free_months only (422 for "
                                                                                "another kind)."},
             "exclude_states": {**nullable(states), "description": create["exclude_states"]["description"]},
             "min_impact": {"type": ["string", "null"], "enum": [*enum(Impact)["enum"], None]},
             "valid_until": {**DATE_TIME_IN, "description": "In the future, and once grants exist not before the "
                                                            "current valid_until (422 otherwise). "
                                                            + DATE_TIME_IN["description"]},
             "budget_cap": {**money, **no_cap, "type": ["number", "string", "null"],
                            "description": "Not below the liability already granted (422); null or \"\" removes "
                                           "the cap. " + money["description"]}}
    csv_export = operation("Accepted, unfulfilled grants as CSV for billing (as `flask offers export`)", "offers",
                           "exportOfferGrants", ok=(200, None), params=[program_id], not_found=True)
    csv_export["responses"]["200"] |= {
        "description": "CSV: " + ",".join(grants.EXPORT_COLUMNS) + ", one accepted grant per row.",
        "content": {"text/csv": {"schema": {"type": "string", "contentMediaType": "text/csv"}}},
        "headers": {"Content-Disposition": {"description": "attachment; filename=...",
                                            "schema": {"type": "string"}}}}
    patch_op = operation(
        "Change some fields of a program: name, description, valid_until (extend only once granted), "
        "budget_cap (not below what is granted) and remind_days_before any time; the terms only while "
        "no grant exists (422); not once closed (409)", "offers", "updateOfferProgram", ok=(200, ref("OfferProgram")),
        body="OfferProgramPatch", params=[program_id], conflict=True)
    return {
        "tags": [{"name": "offers"}],
        "schemas": {
            "OfferProgram": obj(program, list(program)),
            "OfferGrant": obj(grant, list(grant)),
            "OfferAnnounced": obj({"queued": count}, ["queued"]),
            "OfferIssued": obj({"issued": count, "not_issued": count}, ["issued", "not_issued"]),
            "OfferFulfilled": obj({"fulfilled": count, "not_fulfilled": {
                "type": "object", "additionalProperties": {"type": "string"},
                "description": "Code -> why it was not fulfilled (unknown code, or its state)."}},
                ["fulfilled", "not_fulfilled"]),
            "OfferProgramCreate": obj(create, ["name", "kind", "value", "currency", "eligible_states",
                                               "valid_until"], allOf=[{
                "if": {"properties": {"kind": {"not": {"const": OfferKind.FREE_MONTHS.value}}}, "required": ["kind"]},
                "then": {"properties": {"months": {"not": {}, "x-message": "Only for free_months."}}}}]),
            "OfferProgramPatch": obj(patch, description="Only the fields to change."),
            "OfferProgramClose": obj({
                "reason": text(500, blank=False),
                "expire_open": {"type": "boolean", "default": False,
                                "description": "Also end offered (unanswered) grants now; accepted ones stay."}},
                ["reason"]),
            "OfferProgramClosed": obj({
                "already_closed": {"type": "boolean", "description": "true: it was closed before; nothing "
                                                                     "changed but offers ended by expire_open."},
                "expired": count, "program": ref("OfferProgram")}, ["already_closed", "expired", "program"]),
            "OfferFulfil": obj({"codes": {
                "type": "array", "items": {"type": "string"}, "minItems": 1,
                "allOf": [{"contains": {"type": "string", "pattern": "[A-Za-z0-9]"}, "x-message": "Required."}],
                "description": "Codes as printed (any case; dashes and spaces are ignored), at least one with a "
                               "letter or digit."}}, ["codes"]),
            "OfferRevoke": obj({"reason": text(500, blank=False)}, ["reason"]),
        },
        "paths": {
            "/incidents/{incident_id}/offer-programs": {"post": operation(
                "Define a compensation offer for an incident's affected accounts", "offers",
                "createOfferProgram", ok=(201, ref("OfferProgram")), body="OfferProgramCreate",
                params=[path_id("incident_id", "incident")], not_found=True)},
            "/offer-programs/{program_id}": {
                "get": operation(
                    "An offer program with counts per state, liability and an eligibility preview", "offers",
                    "getOfferProgram", ok=(200, ref("OfferProgram")), params=[program_id], not_found=True),
                "patch": patch_op},
            "/offer-programs/{program_id}/close": {"post": operation(
                "Close a program with a reason: no more grants, announcements or reminders; open offers stay "
                "valid unless expire_open (closing twice changes nothing)", "offers", "closeOfferProgram",
                ok=(200, ref("OfferProgramClosed")), body="OfferProgramClose", params=[program_id],
                idempotent=True)},
            "/offer-programs/{program_id}/accepted.csv": {"get": csv_export},
            "/offer-programs/{program_id}/issue": {"post": operation(
                "Grant the offer to every eligible account that has none yet (idempotent, within budget; not "
                "for a closed program or after valid_until: 409)", "offers", "issueOfferProgram",
                ok=(200, ref("OfferIssued")), params=[program_id], idempotent=True, conflict=True)},
            "/offer-programs/{program_id}/announce": {"post": operation(
                "Text and email the offer to every offered grant not told yet (opt-outs respected; not for "
                "closed programs: 409)", "offers", "announceOfferProgram", ok=(200, ref("OfferAnnounced")),
                params=[program_id], idempotent=True, conflict=True)},
            "/offer-programs/{program_id}/fulfil": {"post": operation(
                "Mark accepted grants fulfilled by code", "offers", "fulfilOfferGrants",
                ok=(200, ref("OfferFulfilled")), body="OfferFulfil", params=[program_id], idempotent=True)},
            "/offer-grants/{grant_id}/revoke": {"post": operation(
                "Withdraw an offered or accepted grant, with a reason (audited; any other state: 409)", "offers",
                "revokeOfferGrant", ok=(200, ref("OfferGrant")), body="OfferRevoke",
                params=[path_id("grant_id", "offer grant")], idempotent=True, conflict=True)},
        },
    }
