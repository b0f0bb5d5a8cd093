"""Domain errors raised by services; views map them to form errors, flashes or status codes."""


class DomainError(Exception):
    """A request the domain refuses, with a message meant for the person who made it."""

    status_code = 422

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotAllowed(DomainError):
    """The actor may not do this (403)."""

    status_code = 403


class NotFound(DomainError):
    """Not there, or not visible to the actor: both look the same (404)."""

    status_code = 404


class Conflict(DomainError):
    """The thing exists already or is in a state that forbids the change (409)."""

    status_code = 409
