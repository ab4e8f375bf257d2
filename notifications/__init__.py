"""The notifier: outbox rows, message templates, providers (log, Twilio, SMTP), the worker, Twilio webhooks,
and outbound webhooks (notifications.outbound).

It knows recipients, channels and templates, not incidents or offers."""
