"""Domain errors, raised by kernel operations and turned into HTTP problems by the API.

HooklineError
├── NotFound          the object does not exist for this tenant (never "forbidden")
├── Conflict          a unique thing already exists, or the state forbids the change
├── InvalidInput      the request is well-formed but wrong (bad URL, unknown subscriber)
│   └── QuotaExceeded the tenant has as many of a thing as it may (see hookline.quotas)
└── Busy              the tenant does more at once than it may: try again after a while
"""

from __future__ import annotations

from typing import Any


class HooklineError(Exception):
    """Base of every error a caller of the kernel is expected to handle."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class NotFound(HooklineError):
    status = 404
    title = "Not found"


class Conflict(HooklineError):
    status = 409
    title = "Conflict"


class InvalidInput(HooklineError):
    status = 422
    title = "Invalid input"


class QuotaExceeded(InvalidInput):
    title = "Quota exceeded"


class Busy(HooklineError):
    """Too much at once for now; ``retry_after`` says in how many seconds to try again."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
