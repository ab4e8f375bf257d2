"""Outbound webhooks: operators register https endpoints; changes elsewhere emit events into a delivery outbox
(one row per endpoint per event, in the transaction of the change); the notifier worker signs them per the
Standard Webhooks spec and delivers them with retries. Inbound Twilio callbacks are notifications/webhooks.py."""
