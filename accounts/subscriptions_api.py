"""Subscriptions in the ops JSON API: list and search (cursor pages), counts by channel and component, and
removal (audited). The same functions as the console (accounts.subscriptions)."""
from flask import jsonify, request

from accounts import erasure, subscriptions
from accounts.models import Subscription
from core import paging
from core.db import db
from core.errors import ValidationError
from core.web import json_error
from ops.api import accepts, bp, iso, json_body, list_args, requires, transactional
from ops.auth import current_actor
from ops.models import Role
from ops.openapi import CURSOR, DATE_TIME_OUT, PAGE_LIMIT, nullable, obj, operation, path_id, query, ref

TAG = "subscriptions"


def subscription_json(s: Subscription) -> dict:
    return {"id": s.id, "channel": s.channel, "address": s.address, "language": s.language,
            "follows": "all" if s.follows_all else sorted(subscriptions.followed_ids(db.session, s)),
            "confirmed_at": iso(s.confirmed_at), "created_at": iso(s.created_at)}


@bp.get("/subscriptions")
def list_subscriptions():
    fields = {}
    address, state = request.args.get("address"), request.args.get("state")
    if address is not None and not 1 <= len(address) <= 254:
        fields["address"] = "An email address or a phone number: 1 to 254 characters."
    if state is not None and state not in ("confirmed", "pending"):
        fields["state"] = "Choose one of: confirmed, pending."
    if fields:
        raise ValidationError("Some query parameters are not valid.", fields)
    limit, cursor = list_args()
    try:
        page = paging.page(db.session, subscriptions.search_query(address=address, state=state), Subscription.id,
                           limit=limit, cursor=cursor)
    except paging.BadCursor as e:
        raise ValidationError(str(e), {"cursor": str(e)}) from None
    return jsonify({"subscriptions": [subscription_json(s) for s in page.rows], "next_cursor": page.next_cursor,
                    "limit": limit})


@bp.get("/subscriptions/counts")
def subscription_counts():
    return jsonify(subscriptions.counts(db.session))


@bp.delete("/subscriptions/<int:subscription_id>")
@transactional
def delete_subscription(subscription_id: int):
    subscriptions.remove(db.session, actor=current_actor(), subscription_id=subscription_id)
    return "", 204


@bp.post("/subscriptions/import")
@accepts("text/csv")
def import_subscriptions():
    """A CSV body (as `flask subscriptions import`), all or nothing; `consent` says how they agreed."""
    if request.mimetype != "text/csv":
        return json_error(415, "Send the subscribers as text/csv: address[,channel][,components][,language].")
    result = subscriptions.import_rows(db.session, request.stream, actor=current_actor(),
                                       consent=request.args.get("consent", ""), filename="api")
    if result.error_count:
        db.session.rollback()
        response = jsonify({"error": {"status": 422, "message": f"{result.error_count} invalid row(s): nothing was "
                                                                "imported.", "rows": result.errors}})
        response.status_code = 422
        return response
    db.session.commit()
    return jsonify({k: v for k, v in result.as_dict().items() if k not in ("errors", "error_count")})


@bp.post("/subscriptions/erase")
@requires(Role.ADMIN)
@transactional
def erase_subscriber():
    """Erase a status-page subscriber who has no account (accounts.erasure.erase_subscriber); admins only."""
    data = json_body("SubscriberErase")
    counts = erasure.erase_subscriber(db.session, actor=current_actor(), channel=data["channel"],
                                      address=data["address"])
    return jsonify({"erased": counts})


# Not @transactional (it commits or rolls back itself): sending the same file again changes nothing and sends
# nothing (already subscribed), so a retry needs no Idempotency-Key.
import_subscriptions.api_naturally_idempotent = True


def openapi_piece() -> dict:
    count = {"type": "integer", "minimum": 0}
    item = {"id": {"type": "integer"}, "channel": {"type": "string", "enum": ["email", "sms"]},
            "address": {"type": "string"}, "language": {"type": "string"},
            "follows": {"oneOf": [{"type": "string", "enum": ["all"]}, {"type": "array", "items": {"type": "integer"}}]},
            "confirmed_at": nullable(DATE_TIME_OUT), "created_at": DATE_TIME_OUT}
    listed = obj({"subscriptions": {"type": "array", "items": ref("Subscription")},
                  "next_cursor": {"type": ["string", "null"]}, "limit": count}, ["subscriptions", "next_cursor", "limit"])
    counts = obj({"channels": {"type": "object", "additionalProperties": obj(
                      {"confirmed": count, "pending": count}, ["confirmed", "pending"])},
                  "components": {"type": "array", "items": obj({"id": {"type": "integer"}, "name": {"type": "string"},
                                                               "followers": count}, ["id", "name", "followers"])},
                  "follow_all": count}, ["channels", "components", "follow_all"])
    imported = operation(
        "Import subscribers who agreed elsewhere (CSV, all or nothing, audited)", TAG, "importSubscriptions",
        ok=(200, ref("SubscriptionImport")), params=[
            query("consent", {"type": "string", "minLength": 10, "maxLength": 300},
                  "How these people agreed to get updates (kept with each new subscription and in the audit).")
            | {"required": True}])
    imported["description"] = (
        "The body is `text/csv` with a header: `address` (required), `channel` (email or sms; blank: guessed), "
        "`components` (names or ids separated by `;`; blank: all), `language`. An export of the subscriptions "
        "dataset imports as it is. Any invalid row and nothing is applied (422 lists every row's line, column "
        "and reason). Opted-out addresses are skipped, existing subscriptions kept, pending ones confirmed; each "
        "new subscriber is sent one welcome message with the way out. Sending the same file again changes "
        "nothing.")
    imported["requestBody"] = {"required": True, "content": {"text/csv": {"schema": {
        "type": "string", "contentMediaType": "text/csv"}}}}
    imported["responses"] |= {
        "400": {"description": "The body could not be read.", "content": {"application/json": {
            "schema": ref("Error")}}},
        "413": {"description": "The body is larger than the server accepts (MAX_CONTENT_LENGTH).",
                "content": {"application/json": {"schema": ref("Error")}}},
        "415": {"description": "The body was not text/csv.", "content": {"application/json": {
            "schema": ref("Error")}}},
        "422": {"description": "Invalid rows (error.rows), no consent, or an unreadable file: nothing applied.",
                "content": {"application/json": {"schema": ref("SubscriptionImportProblem")}}}}
    problem = obj({"error": obj({
        "status": {"type": "integer"}, "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        "rows": {"type": "array", "description": "The first 1000 invalid rows.", "items": obj(
            {"line": {"type": "integer"}, "column": {"type": "string"}, "reason": {"type": "string"}},
            ["line", "column", "reason"])}}, ["status", "message"])}, ["error"])
    import_counts = obj({"added": count, "confirmed": count, "unchanged": count, "opted_out": count},
                        ["added", "confirmed", "unchanged", "opted_out"])
    return {
        "tags": [{"name": TAG}],
        "schemas": {"Subscription": obj(item, list(item)), "SubscriptionList": listed, "SubscriptionCounts": counts,
                    "SubscriptionImport": import_counts, "SubscriptionImportProblem": problem,
                    "SubscriberErase": obj({"channel": {"type": "string", "enum": ["email", "sms"]},
                                            "address": {"type": "string", "minLength": 1, "maxLength": 254}},
                                           ["channel", "address"])},
        "paths": {
            "/subscriptions": {"get": operation(
                "People subscribed on the status page, newest first (search by address, filter by state)", TAG,
                "listSubscriptions", ok=(200, ref("SubscriptionList")), params=[
                    query("address", {"type": "string", "minLength": 1, "maxLength": 254},
                          "This email address or phone number (any format)."),
                    query("state", {"type": "string", "enum": ["confirmed", "pending"]}, "Confirmed or not yet."),
                    query("limit", PAGE_LIMIT, "How many per page."),
                    query("cursor", CURSOR, "next_cursor of the previous page.")])},
            "/subscriptions/import": {"post": imported},
            "/subscriptions/erase": {"post": operation(
                "Erase a status-page subscriber who has no account (admins; cannot be undone): the subscription, "
                "the messages to the address and its traces everywhere; the opt-out stays as a keyed hash", TAG,
                "eraseSubscriber", body="SubscriberErase", ok=(200, obj({"erased": {
                    "type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}}, ["erased"])),
                not_found=True, conflict=True, idempotent=True)},
            "/subscriptions/counts": {"get": operation(
                "Subscriptions by channel and state, and confirmed followers per component", TAG,
                "countSubscriptions", ok=(200, ref("SubscriptionCounts")))},
            "/subscriptions/{subscription_id}": {"delete": operation(
                "Remove a subscription (audited)", TAG, "deleteSubscription", ok=(204, None),
                params=[path_id("subscription_id", "subscription")], not_found=True)},
        },
    }
