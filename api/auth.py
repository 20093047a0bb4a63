"""Bearer API keys: each request names its tenant by key; keys are looked up by hash.

A small in-process cache spares the hot ingest path one query per request. It holds only
successful look-ups for ``TTL`` seconds, so a revoked key stops working within that time.
"""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.requests import Request

from hookline.services import services
from hookline.tenants import Tenant, tenant_for_key

TTL = 1.0  # seconds: a revoked key is refused within about this long
_MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Tenant]] = {}

    def get(self, key: str) -> Tenant | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, tenant: Tenant) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + TTL, tenant)


_UNAUTHORIZED = {"www-authenticate": 'Bearer realm="hookline"'}


_FOUND = "hookline.tenant"  # where a request keeps the tenant once its key was looked up


async def tenant(request: Request) -> Tenant:
    """The tenant whose API key authorises this request, or a 401 problem."""
    known: Tenant | None = request.scope.get(_FOUND)
    if known is not None:
        return known
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(
            401, "send an API key as `Authorization: Bearer <key>`", headers=_UNAUTHORIZED
        )
    cache: KeyCache = request.app.state.key_cache
    found = cache.get(key)
    if found is None:
        found = await tenant_for_key(services(request).pool, key.strip())
        if found is None:
            raise HTTPException(401, "this API key is not valid", headers=_UNAUTHORIZED)
        cache.put(key, found)
    request.scope[_FOUND] = found
    return found
