"""Event types: a tenant's catalog of event names, their JSON Schema versions, and the check
ingest runs on every event against them.

A type has numbered schema versions 1, 2, ... that are never changed or removed once
written: an event is stamped with the version it was checked against, and validators are
cached in-process by ``(type id, version)``. A new version is created by
``POST /v1/event-types/{name}/schemas`` rather than by a PATCH of the type: a version is a new,
immutable, server-numbered thing (a create, with its own 201 and ``Idempotency-Key``), not an
edit of the type's fields.

Deprecation is advisory: a deprecated type is still accepted at ingest and delivered; it
shows as deprecated in listings so producers and subscribers can move off it.

Whether ingest accepts a type that is not in the catalog is the tenant's
``unknown_event_types`` setting (``accept`` by default, or ``refuse``). It is the only tenant
setting so far and only event types read it, so it lives here; when a second one arrives the
pair should move to :mod:`hookline.tenants`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from jsonschema.protocols import Validator

from hookline.db import QUERIES, Executor, Pool, Row, row
from hookline.errors import UNKNOWN, Conflict, InvalidInput, NotFound, Problem
from hookline.json_schema import (
    INLINE_STEPS,
    VALIDATION_THREADS,
    VALIDATION_THREADS_PER_TENANT,
    ValidatorCache,
    compile_schema,
    data_problems,
    example_problems,
    quick_data_problems,
    schema_problems,
)
from hookline.json_schema import (
    Problem as SchemaProblem,
)
from hookline.json_schema.workers import SchemaWorkers
from hookline.quotas import make_room

UnknownTypes = Literal["accept", "refuse"]
#: What :func:`check_events` reads through: the pool, or a connection (inside the ingest
#: transaction, a pooled one).

# (type id, version) names an immutable schema, so entries never go stale; the bound keeps
# a process with many tenants from holding every validator it ever compiled.
_VALIDATORS = ValidatorCache(size=1024)
# Validations that may be long, and checks of big schemas, run off the event loop here.
WORKERS = SchemaWorkers(VALIDATION_THREADS, VALIDATION_THREADS_PER_TENANT)

# The catalog rows ingest needs (policy, type ids, latest versions), kept for CATALOG_TTL
# seconds: a query per ingest request cost a third of single-event ingest. Writes in this
# process clear it at once; other processes see a catalog change within CATALOG_TTL.
CATALOG_TTL = 2.0
_catalog: dict[tuple[str, tuple[str, ...]], tuple[float, list[Any]]] = {}


async def _catalog_rows(conn: Executor, tenant_id: str, names: list[str]) -> list[Any]:
    key = (tenant_id, tuple(names))
    now = time.monotonic()
    hit = _catalog.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    records = list(await conn.fetch(QUERIES["event_types_for_check"], tenant_id, names))
    if len(_catalog) > 10_000:
        _catalog.clear()
    _catalog[key] = (now + CATALOG_TTL, records)
    return records


def forget_catalog() -> None:
    """Drop the cached catalog rows (after a change that ingest must see at once)."""
    _catalog.clear()


async def create_event_type(
    pool: Pool,
    tenant_id: str,
    name: str,
    description: str = "",
    schema: dict[str, Any] | None = None,
    example: dict[str, Any] | None = None,
    *,
    quota: int,
) -> Row:
    """A new event type; with ``schema`` it starts at schema version 1 (409 if the name is
    taken, 422 with the failing paths if the schema or the example is not valid, or when
    the tenant has ``quota`` event types already; 0: no limit)."""
    if schema is None and example is not None:
        raise InvalidInput(
            "an example belongs to a schema version; send `schema` with it",
            problems=[Problem(("example",), "an example needs a schema")],
        )
    if schema is not None:
        await _check_schema(tenant_id, schema, example)
    async with pool.acquire() as conn, conn.transaction():
        await make_room(conn, tenant_id, "event_types", quota)
        created = row(
            await conn.fetchrow(
                QUERIES["create_event_type"], tenant_id, name, description, schema, example
            )
        )
    if created is None:
        raise Conflict(f"event type {name!r} exists already")
    forget_catalog()
    return created


async def get_event_type(pool: Pool, tenant_id: str, name: str) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_event_type"], tenant_id, name))
    if found is None:
        raise NotFound(f"no event type {name!r}")
    return found


async def list_event_types(
    pool: Pool, tenant_id: str, cursor: str | None, limit: int, deprecated: bool | None = None
) -> list[Row]:
    """A page of event types in name order, after the name ``cursor``."""
    records = await pool.fetch(QUERIES["list_event_types"], tenant_id, cursor, limit, deprecated)
    return [dict(r) for r in records]


async def update_event_type(
    pool: Pool,
    tenant_id: str,
    name: str,
    description: str | None = None,
    deprecated: bool | None = None,
) -> Row:
    """Change the description and/or deprecate (``True``) or undeprecate (``False``) a type;
    ``None`` leaves a field as it is. Deprecating again keeps the first ``deprecated_at``."""
    found = row(
        await pool.fetchrow(QUERIES["update_event_type"], tenant_id, name, description, deprecated)
    )
    if found is None:
        raise NotFound(f"no event type {name!r}")
    forget_catalog()
    return found


async def add_schema_version(
    pool: Pool,
    tenant_id: str,
    name: str,
    schema: dict[str, Any],
    example: dict[str, Any] | None = None,
) -> Row:
    """The type's next schema version (``latest + 1``); 422 if the schema or the example is
    not valid, 404 if there is no such type."""
    await _check_schema(tenant_id, schema, example)
    added = row(
        await pool.fetchrow(QUERIES["add_schema_version"], tenant_id, name, schema, example)
    )
    if added is None:
        raise NotFound(f"no event type {name!r}")
    forget_catalog()
    return added


async def get_schema_version(pool: Pool, tenant_id: str, name: str, version: int) -> Row:
    found = row(await pool.fetchrow(QUERIES["get_schema_version"], tenant_id, name, version))
    if found is None:
        raise NotFound(f"no schema version {version} of event type {name!r}")
    return found


async def list_schema_versions(
    pool: Pool, tenant_id: str, name: str, cursor: int | None, limit: int
) -> list[Row]:
    """A page of a type's schema versions, newest first, below the version ``cursor``."""
    records = await pool.fetch(QUERIES["list_schema_versions"], tenant_id, name, cursor, limit)
    if not records:
        await get_event_type(pool, tenant_id, name)  # 404 for a type that does not exist
    return [dict(r) for r in records]


async def example_data(
    pool: Pool, tenant_id: str, name: str, version: int | None = None
) -> tuple[int, str | None] | None:
    """The example ``data`` (JSON text, or None when it has none) of the type's given or
    latest schema version, with that version; None when there is no such type or version.
    For sending a test event of a type."""
    found = await pool.fetchrow(QUERIES["example_for_type"], tenant_id, name, version)
    return None if found is None else (found["version"], found["example"])


async def check_events(
    conn: Executor,
    tenant_id: str,
    items: Sequence[tuple[str, int | None, Any]],
    locs: Sequence[Sequence[str | int]],
) -> list[int | None]:
    """Check events against their types before ingest; return the version to stamp on each.

    ``items`` are ``(type, requested schema version or None, data)`` with ``data`` the parsed
    object (not JSON text); ``locs[i]`` is where item ``i`` is in the caller's input, e.g.
    ``()`` for one event or ``("events", 3)`` in a batch. Each item gets the version it
    asked for, or the type's latest when it asked for none, or None when the type has no
    schemas (or is unknown and the tenant accepts unknown types). Deprecated types are
    accepted.

    Raises :class:`InvalidInput` listing every problem of every item: ``[*loc, "data",
    *path]`` for each place the data fails its schema (at most MAX_PROBLEMS an item, or one
    saying it is too costly to validate), ``[*loc, "version"]`` for a version the type does
    not have, ``[*loc, "type"]`` for an unknown type when the tenant refuses them. Costs one
    query for all the batch's types while the validators are cached, and one more for those
    that are not. Validation runs on the event loop while it fits INLINE_STEPS (for the
    whole call); the rest runs in one of the tenant's worker threads.
    """
    if len(items) != len(locs):
        raise ValueError("check_events needs one location prefix per item")
    if not items:
        return []
    names = sorted({name for name, _, _ in items})
    records = await _catalog_rows(conn, tenant_id, names)
    if not records:
        raise NotFound(f"no tenant {tenant_id!r}")
    refuse = records[0]["policy"] == "refuse"
    known: dict[str, tuple[str, int | None]] = {
        r["name"]: (r["id"], r["latest_version"]) for r in records if r["name"] is not None
    }
    errors: list[tuple[int, Problem]] = []  # (item, problem): sorted by item at the end
    failing: set[int] = set()
    versions: list[int | None] = []
    for i, ((name, requested, _), loc) in enumerate(zip(items, locs, strict=True)):
        version, fault = _version_for(name, requested, known.get(name), refuse)
        versions.append(version)
        if fault is not None:
            errors.append((i, Problem((*loc, fault[0]), fault[1], fault[2])))
            failing.add(i)
    wanted = {
        (known[name][0], version)
        for i, ((name, _, _), version) in enumerate(zip(items, versions, strict=True))
        if version is not None and i not in failing
    }
    validators = await _validators(conn, tenant_id, wanted)
    checked = [
        (i, validators[known[name][0], version], data)
        for i, ((name, _, data), version) in enumerate(zip(items, versions, strict=True))
        if version is not None and i not in failing
    ]
    found = await _problems(tenant_id, [(validator, data) for _, validator, data in checked])
    for (i, _, _), problems in zip(checked, found, strict=True):
        for path, msg in problems:
            errors.append((i, Problem((*locs[i], "data", *path), msg)))
            failing.add(i)
    if errors:
        errors.sort(key=lambda error: error[0])
        raise InvalidInput(_detail(len(items), len(failing)), problems=[e for _, e in errors])
    return versions


def _version_for(
    name: str, requested: int | None, found: tuple[str, int | None] | None, refuse: bool
) -> tuple[int | None, tuple[str, str, str] | None]:
    """The version to stamp on an event, or the field at fault, why, and the kind."""
    if found is None:
        if refuse:
            return None, (
                "type",
                f"unknown event type {name!r}; register it with POST /v1/event-types",
                UNKNOWN,
            )
        if requested is not None:
            return None, (
                "version",
                f"event type {name!r} is not registered: no versions",
                "invalid",
            )
        return None, None
    latest = found[1]
    if requested is None:
        return latest, None
    if latest is None:
        return None, ("version", f"event type {name!r} has no schema versions", "invalid")
    if not 1 <= requested <= latest:
        return None, (
            "version",
            f"event type {name!r} has schema versions 1 to {latest}",
            "invalid",
        )
    return requested, None


async def _problems(tenant_id: str, work: list[tuple[Validator, Any]]) -> list[list[SchemaProblem]]:
    """The problems of each ``(validator, data)``: on the loop while they fit INLINE_STEPS
    together, from the first that does not on in a worker thread (a quick answer is the
    full budget's answer, so where an event is checked changes nothing)."""
    found: list[list[SchemaProblem]] = []
    left = INLINE_STEPS
    for validator, data in work:
        problems, spent = quick_data_problems(validator, data, left)
        if problems is None:
            break
        found.append(problems)
        left -= spent
    if len(found) < len(work):
        found += await WORKERS.run(tenant_id, _all_problems, work[len(found) :])
    return found


def _all_problems(work: list[tuple[Validator, Any]]) -> list[list[SchemaProblem]]:
    return [data_problems(validator, data, in_worker=True) for validator, data in work]


async def _validators(
    conn: Executor, tenant_id: str, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], Validator]:
    found: dict[tuple[str, int], Validator] = {}
    missing: list[tuple[str, int]] = []
    for key in wanted:
        cached = _VALIDATORS.get(key)
        if cached is None:
            missing.append(key)
        else:
            found[key] = cached
    if missing:
        records = await conn.fetch(
            QUERIES["schemas_for_check"],
            tenant_id,
            [type_id for type_id, _ in missing],
            [version for _, version in missing],
        )
        # compiling a schema compiles its patterns: up to ~0.1 s, off the event loop
        compiled = await WORKERS.run(tenant_id, _compile_all, [r["schema"] for r in records])
        for r, validator in zip(records, compiled, strict=True):
            key = (r["event_type_id"], r["version"])
            found[key] = validator
            _VALIDATORS.put(key, validator)
    return found


def _compile_all(schemas: list[str]) -> list[Validator]:
    return [compile_schema(orjson.loads(schema)) for schema in schemas]


async def _check_schema(
    tenant_id: str, schema: dict[str, Any], example: dict[str, Any] | None
) -> None:
    """422 unless ``schema`` is usable and ``example`` (if any) fits it; checked in one of
    the tenant's worker threads (up to ~0.5 s for the biggest schema allowed; compiling
    patterns is work too)."""
    where, problems = await WORKERS.run(
        tenant_id, _schema_and_example_problems, schema, example, in_worker=True
    )
    if problems:
        detail = (
            "the schema is not a valid JSON Schema (draft 2020-12)"
            if where == "schema"
            else "the example does not match the schema"
        )
        raise InvalidInput(
            detail, problems=[Problem((where, *path), msg) for path, msg in problems]
        )


def _schema_and_example_problems(
    schema: dict[str, Any], example: dict[str, Any] | None, in_worker: bool
) -> tuple[str, list[SchemaProblem]]:
    problems = schema_problems(schema)
    if problems or example is None:
        return "schema", problems
    return "example", example_problems(example) or data_problems(
        compile_schema(schema), example, in_worker=in_worker
    )


def _detail(total: int, failing: int) -> str:
    if total == 1:
        return "the event does not fit its event type; see errors"
    return f"{failing} of {total} events do not fit their event types; see errors"
