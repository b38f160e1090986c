"""Domain errors shared by every service.

Pure Python: domain code raises these, the gRPC error interceptor maps them to status codes
(docs/architecture.md, "Errors") and the gateway maps the status codes to problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: `field` is the request field path (e.g. ``applicant.id_number``), `reason` a
    machine-readable code (e.g. ``BAD_CHECK_DIGIT``), `description` a sentence for people."""

    field: str
    reason: str
    description: str = ""


class DomainError(Exception):
    """Base of every error a department may answer with on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """Malformed or invalid input: INVALID_ARGUMENT with google.rpc.BadRequest field violations."""

    def __init__(
        self, violations: list[FieldViolation] | tuple[FieldViolation, ...], message: str = ""
    ) -> None:
        self.violations = tuple(violations)
        super().__init__(message or "; ".join(f"{v.field}: {v.reason}" for v in self.violations))

    @classmethod
    def one(cls, field: str, reason: str, description: str = "") -> InvalidArgument:
        return cls([FieldViolation(field, reason, description)])


class NotFound(DomainError):
    """No such resource: NOT_FOUND."""


class AlreadyExists(DomainError):
    """A duplicate, e.g. an open application of the same kind: ALREADY_EXISTS."""


class FailedPrecondition(DomainError):
    """A business rule refuses: FAILED_PRECONDITION with a machine-readable `reason`
    (UPPER_SNAKE_CASE, stable, documented in the service's proto)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unavailable(DomainError):
    """A department this one depends on did not answer in time: UNAVAILABLE (the caller may retry)."""


class ValidationCollector:
    """Collects every field violation of a request so that all of them are reported at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, reason: str, description: str = "") -> None:
        self.violations.append(FieldViolation(field, reason, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)
