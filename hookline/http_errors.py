"""How hookline's two web faces (the API and the dashboard) answer a kernel error: the HTTP
status of each kind. The kernel's errors say what went wrong, not how to answer it; this
table is the one place that says it for HTTP."""

from __future__ import annotations

from hookline.errors import Busy, Conflict, HooklineError, InvalidInput, NotFound

# the first class an error is an instance of decides
_STATUSES: tuple[tuple[type[HooklineError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (Busy, 429),
)


def status_of(exc: HooklineError) -> int:
    return next((code for kind, code in _STATUSES if isinstance(exc, kind)), 400)


def retry_headers(exc: HooklineError) -> dict[str, str] | None:
    """``Retry-After`` for an error that says when to try again."""
    return {"retry-after": str(exc.retry_after)} if isinstance(exc, Busy) else None
