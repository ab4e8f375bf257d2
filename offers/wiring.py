"""Offers' part of the app: the subscriber's accept/decline page, the console, the ops API routes and their
piece of the OpenAPI document, `flask offers`; and what it lends the notifier: the offer fields of messages,
the ACCEPT reply to an SMS, the expiry and reminder passes, and the offer.accepted webhook event."""
from core import periodic
from incidents import hub
from notifications import templates, webhooks
from notifications.outbound import events as webhook_events
from offers import api, cli, datasets, grants, public_views, schedule, sms, text, views
from ops import openapi


def init_app(app) -> None:
    app.register_blueprint(public_views.bp)  # offers on the personal page: accept / decline
    app.register_blueprint(views.bp)  # /ops/incidents/<id>/offers, /ops/offers/<id>
    openapi.piece(api.openapi_piece)
    datasets.register()  # programs and grants for ops.exports
    cli.init_app(app)
    hub.register(hub.HubLink("Compensation offers", "offers_console.programs",
                             "Define, issue and announce offers to affected accounts", order=50))
    templates.register_context("grant", text.offer_context)
    webhooks.register_keyword("accept", ("ACCEPT", "ACEPTO", "ACEPTAR"), sms.keyword_reply)
    webhook_events.register(webhook_events.EventType(
        grants.OFFER_ACCEPTED, "A subscriber accepted a compensation offer (web or SMS). data: {grant, via}."))
    periodic.register(periodic.Task(
        "offers.expire", schedule.expire_due, 5 * 60, "Mark offered grants past their program's validity as expired."))
    periodic.register(periodic.Task(
        "offers.remind", schedule.remind_due, 15 * 60,
        "Send each open program's one reminder when its reminder window opens."))
