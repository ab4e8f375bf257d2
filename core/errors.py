"""Errors raised by service functions, shown by forms beside fields and by the API as JSON."""


class ServiceError(Exception):
    """A request the service refuses; `status` is the HTTP status a view should answer with."""

    status = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationError(ServiceError):
    """Input that breaks a rule; `fields` maps a field name to what to fix."""

    status = 422


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409
