"""`flask --app app backup PATH` and `flask --app app restore PATH`."""


def init_app(app) -> None:
    pass
