"""Domain errors. The HTTP layer maps each to one status code with a clear `detail`."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_hint = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    status_hint = 404

    def __init__(self, entity: str) -> None:
        super().__init__(f"{entity} not found")
        self.entity = entity


class PermissionDenied(DomainError):
    status_hint = 403


class NotAuthenticated(DomainError):
    status_hint = 401


class Conflict(DomainError):
    status_hint = 409

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.extra = extra


class ConfirmationRequired(Conflict):
    """Allowed, but only when asked for knowingly: send the request again with `confirm_field`
    set to true (the answer names it, and says why)."""

    def __init__(self, detail: str, *, confirm_field: str, **extra: Any) -> None:
        super().__init__(detail, confirm_field=confirm_field, **extra)
        self.confirm_field = confirm_field


class InvalidInput(DomainError):
    """A value that passed type checks but not the domain's rules; names the field."""

    status_hint = 422

    def __init__(self, field: str | tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = (field,) if isinstance(field, str) else field
        self.message = message


class UnsupportedMedia(DomainError):
    status_hint = 415


class PayloadTooLarge(DomainError):
    status_hint = 413


class Throttled(DomainError):
    status_hint = 429

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
