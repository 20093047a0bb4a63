"""Moments: the dates and times hookline accepts from anyone, and the rule for them.

Every date-time a tenant, a subscriber or an operator sends (an event's expiry, a replay's
window, a list filter) has a zone and lies between :data:`EARLIEST` and :data:`LATEST`.
The bounds keep every moment inside what Python, asyncpg and the arithmetic around them
handle the same way: Postgres takes dates up to the year 294276 and ``infinity``, but asyncpg
hands back ``datetime.max`` / ``datetime.min`` *without a zone* for the edges, and one such
value compared with an aware datetime stalled a strict lane for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field
from pydantic.config import JsonDict

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
#: How the range is said to people, in errors and in the API document.
RANGE = "between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z"
#: The years of the range, as a pattern the API document puts on every date-time (JSON
#: Schema has no bounds for a date-time; the last day of 9999 is left to the check).
YEARS = "^(19[7-9][0-9]|[2-9][0-9]{3})-"


def check_moment(value: datetime) -> datetime:
    """``value`` in UTC, or :class:`ValueError` saying what is accepted."""
    if value.tzinfo is None:
        raise ValueError("a date-time with a zone, e.g. 2026-01-01T00:00:00Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(f"a date-time {RANGE}") from None
    if not EARLIEST <= utc <= LATEST:
        raise ValueError(f"a date-time {RANGE}")
    return utc


def _say_range(schema: JsonDict) -> None:
    said = str(schema.get("description", "")).rstrip()
    schema["description"] = f"{said} {RANGE[0].upper()}{RANGE[1:]}.".lstrip()
    schema["pattern"] = YEARS


#: A date-time with a zone within the range every moment hookline accepts lies in, for
#: the API's models (and so the OpenAPI document, which says the range).
Moment = Annotated[AwareDatetime, AfterValidator(check_moment), Field(json_schema_extra=_say_range)]
