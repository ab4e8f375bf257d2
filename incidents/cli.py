"""`flask --app app demo`: seed a Sidekick-like outage."""


def init_app(app) -> None:
    pass
