"""The demo seed (`flask --app app demo`): a Sidekick-like outage through every domain's real services.

It sits above all domains (it uses each of them), so it lives beside the app factory, not in core."""
