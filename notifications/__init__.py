"""The notifier: outbox rows, message templates, providers (log, Twilio, SMTP), the worker, webhooks.

It knows recipients, channels and templates, not incidents or offers."""
