"""Endpoints (subscriptions): where a subscriber's webhooks go and how."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hookline import secrets
from hookline.db import QUERIES, Pool, Row, row
from hookline.errors import InvalidInput, NotFound
from hookline.settings import IPNetwork
from hookline.targets import TargetRefused, check_target


async def create_endpoint(
    pool: Pool, tenant_id: str, allowed: Sequence[IPNetwork], fields: dict[str, Any]
) -> Row:
    """Register an endpoint after checking its URL against SSRF; it gets a new secret.

    ``fields`` are the validated API fields (see ``api.schemas.EndpointIn``).
    """
    try:
        await check_target(fields["url"], allowed)
    except TargetRefused as exc:
        raise InvalidInput(str(exc), errors=[{"loc": ["body", "url"], "msg": str(exc)}]) from None
    created = row(
        await pool.fetchrow(
            QUERIES["create_endpoint"],
            tenant_id,
            fields["subscriber"],
            fields["url"],
            fields["description"],
            fields["event_types"],
            fields["ordering"],
            fields["on_exhausted"],
            fields["payload"],
            fields["format"],
            fields["timeout"],
            fields["rate_limit"],
            fields["max_in_flight"],
            fields["headers"],
            secrets.new_signing_secret(),
        )
    )
    if created is None:
        raise InvalidInput(
            f"no subscriber {fields['subscriber']!r}; create it first with POST /v1/subscribers",
            errors=[{"loc": ["body", "subscriber"], "msg": "unknown subscriber"}],
        )
    return created


async def get_endpoint(pool: Pool, tenant_id: str, endpoint_id: str) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_endpoint"], tenant_id, endpoint_id))
    if found is None:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return found


async def list_endpoints(
    pool: Pool, tenant_id: str, subscriber: str | None, cursor: str | None, limit: int
) -> list[Row]:
    records = await pool.fetch(QUERIES["list_endpoints"], tenant_id, subscriber, cursor, limit)
    return [dict(r) for r in records]


async def current_secret(pool: Pool, tenant_id: str, endpoint_id: str) -> str:
    secret = await pool.fetchval(QUERIES["current_secret"], tenant_id, endpoint_id)
    if secret is None:
        raise NotFound(f"no endpoint {endpoint_id!r}")
    return str(secret)
