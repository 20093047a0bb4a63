"""Domain errors, raised by kernel operations: what went wrong and where, never how to
answer it. The API turns them into problem details (``api/problems.py`` picks the status
by class and puts each :class:`Problem` under ``body``), the dashboard into messages next
to its fields.

HooklineError
├── NotFound          the object does not exist for this tenant (never "forbidden")
├── Conflict          a unique thing already exists, or the state forbids the change
├── InvalidInput      the input is well-formed but wrong (bad URL, unknown subscriber)
│   └── QuotaExceeded the tenant has as many of a thing as it may (see hookline.quotas)
└── Busy              the tenant does more at once than it may: try again after a while
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: A place in an operation's input: field names and list positions, outermost first.
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is (``at``), what is wrong (``message``,
    for a person), what kind of wrong (``kind``, for code that words it for its reader)
    and, where someone can fix it, how (``hint``)."""

    at: Path
    message: str
    kind: str = "invalid"
    hint: str | None = None

    def said(self) -> str:
        """The message with its hint, as one sentence."""
        return self.message if self.hint is None else f"{self.message}; {self.hint}"


# the kinds code acts on (anything else is "invalid")
UNKNOWN = "unknown"  # names a thing that does not exist (a subscriber)
TAKEN = "taken"  # a unique value already used
NOT_ALLOWED = "not_allowed"  # refused by the installation's policy (a target network)
UNRESOLVABLE = "unresolvable"  # a host name that does not resolve
REQUIRED = "required"


class HooklineError(Exception):
    """Base of every error a caller of the kernel is expected to handle."""

    def __init__(self, detail: str, *, problems: Sequence[Problem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = tuple(problems)


class NotFound(HooklineError):
    pass


class Conflict(HooklineError):
    pass


class InvalidInput(HooklineError):
    pass


class QuotaExceeded(InvalidInput):
    pass


class Busy(HooklineError):
    """Too much at once for now; ``retry_after`` says in how many seconds to try again."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
