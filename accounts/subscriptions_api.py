"""Subscriptions in the ops JSON API: list and search (cursor pages), counts by channel and component, and
removal (audited). The same functions as the console (accounts.subscriptions)."""
from flask import jsonify, request

from accounts import subscriptions
from accounts.models import Subscription
from core import paging
from core.db import db
from core.errors import ValidationError
from ops.api import bp, iso, list_args, transactional
from ops.auth import current_actor
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
        fields["address"] = "An email address: 1 to 254 characters."
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


def openapi_piece() -> dict:
    count = {"type": "integer", "minimum": 0}
    item = {"id": {"type": "integer"}, "channel": {"type": "string", "enum": ["email"]},
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
    return {
        "tags": [{"name": TAG}],
        "schemas": {"Subscription": obj(item, list(item)), "SubscriptionList": listed, "SubscriptionCounts": counts},
        "paths": {
            "/subscriptions": {"get": operation(
                "People subscribed on the status page, newest first (search by address, filter by state)", TAG,
                "listSubscriptions", ok=(200, ref("SubscriptionList")), params=[
                    query("address", {"type": "string", "minLength": 1, "maxLength": 254}, "This email address."),
                    query("state", {"type": "string", "enum": ["confirmed", "pending"]}, "Confirmed or not yet."),
                    query("limit", PAGE_LIMIT, "How many per page."),
                    query("cursor", CURSOR, "next_cursor of the previous page.")])},
            "/subscriptions/counts": {"get": operation(
                "Subscriptions by channel and state, and confirmed followers per component", TAG,
                "countSubscriptions", ok=(200, ref("SubscriptionCounts")))},
            "/subscriptions/{subscription_id}": {"delete": operation(
                "Remove a subscription (audited)", TAG, "deleteSubscription", ok=(204, None),
                params=[path_id("subscription_id", "subscription")], not_found=True)},
        },
    }
