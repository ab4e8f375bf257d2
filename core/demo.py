"""`flask --app app demo`: seed a Sidekick-like outage so a fresh install shows a living product."""


def init_app(app) -> None:
    pass
