"""The domain's own errors: what services, selectors and configuration raise.

Plain Python, no HTTP: each error has a ``code`` (``invalid``, ``conflict``, ``not_found``, ...), a
``message`` for people and ``fields`` saying which inputs it is about. ``marketing_ai.api.exception_handler``
is the one place that turns them into the API's error shape and a status (400, 404, 409); dashboard
pages and the admin catch ``DomainError`` and show ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class DomainError(Exception):
    """Base of every domain error: ``code``, ``message`` and ``fields`` (JSON-ready)."""

    code = "error"
    default_message = "The request cannot be done."

    def __init__(self, message: str | None = None, *, fields: Mapping[str, Any] | None = None,
                 code: str | None = None) -> None:
        self.message = str(message) if message else self.default_message
        self.fields: dict[str, Any] = dict(fields or {})
        if code:
            self.code = code
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InvalidInput(DomainError):
    """Bad input, named by field: ``InvalidInput({"days": ["must be one of 7, 30, 90"]})``.

    The message is the first field's first reason (``"days: must be one of 7, 30, 90"``); a reason not
    about one field goes under ``non_field_errors`` (``InvalidInput("give one of a or b")``).
    """

    code = "invalid"
    default_message = "Invalid request."

    def __init__(self, fields: Mapping[str, Any] | str | None = None, *, message: str | None = None) -> None:
        if isinstance(fields, str):
            fields = {"non_field_errors": [fields]}
        shown = {str(name): _as_text(reasons) for name, reasons in (fields or {}).items()}
        super().__init__(message or first_reason(shown), fields=shown)


class Conflict(DomainError):
    """The request is valid but the resource's state forbids it (e.g. ending a draft test)."""

    code = "conflict"
    default_message = "The resource is not in a state that allows this."


class StaleValue(Conflict):
    """The live value is no longer the one a proposal (or an undo) was based on."""

    code = "stale_value"


class NotFound(DomainError):
    code = "not_found"
    default_message = "Not found."


class RowProblem(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def field(self) -> str: ...
    @property
    def reason(self) -> str: ...

    def as_dict(self) -> dict: ...


class InvalidRows(InvalidInput):
    """A batch with bad rows: ``fields`` are ``{"rows": [{"index", "field", "reason"}, ...], "errors_total",
    "errors_not_listed"}`` with their JSON types (``index`` an int); at most ``listed`` rows are listed."""

    def __init__(self, errors: Sequence[RowProblem], *, listed: int = 100) -> None:
        self.errors = list(errors)
        shown = self.errors[:listed]
        bad = len({e.index for e in self.errors})
        first = self.errors[0]
        more = len(self.errors) - len(shown)
        message = (
            f"{bad} bad row(s), nothing stored; first: row {first.index} {first.field}: {first.reason}"
            + (f" ({len(self.errors)} errors; the first {len(shown)} are listed)" if more else "")
        )
        DomainError.__init__(self, message, fields={
            "rows": [e.as_dict() for e in shown], "errors_total": len(self.errors), "errors_not_listed": more,
        })


def first_reason(fields: Mapping[str, Any]) -> str:
    """``"field: reason"`` for the first field's first reason (the reason alone for ``non_field_errors``)."""
    if not fields:
        return InvalidInput.default_message
    first, reason = next(iter(fields.items()))
    while isinstance(reason, (list, dict)) and reason:
        reason = reason[0] if isinstance(reason, list) else next(iter(reason.values()))
    return str(reason) if first == "non_field_errors" else f"{first}: {reason}"


def _as_text(value: Any) -> Any:
    """Reasons as text at every leaf (a list or dict keeps its shape)."""
    if isinstance(value, Mapping):
        return {str(k): _as_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_text(v) for v in value]
    return str(value)
