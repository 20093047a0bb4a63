"""Event types in the kernel: schema versions, and the check ingest runs on every event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import asyncpg
import orjson
import pytest

from hookline import event_types
from hookline.db import QUERIES, Pool
from hookline.errors import Conflict, InvalidInput, NotFound
from hookline.event_types import (
    add_schema_version,
    check_events,
    create_event_type,
    example_data,
    get_event_type,
    list_schema_versions,
    update_event_type,
)
from hookline.json_schema import ValidatorCache, compile_schema, data_problems, schema_problems
from hookline.tenants import create_tenant, update_tenant_settings
from tests.conftest import TenantKey

ORDER_V1 = {
    "type": "object",
    "required": ["order_id", "total"],
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "integer", "minimum": 0},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
    },
    "$defs": {
        "line": {
            "type": "object",
            "required": ["sku"],
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        }
    },
}
# v2 renames total to amount: a v1 event is not a valid v2 event and the other way round
ORDER_V2 = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "additionalProperties": False,
}


def _errors(exc: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[list[Any], str]]:
    assert exc.value.errors is not None
    return [(e["loc"], e["msg"]) for e in exc.value.errors]


def _locs(exc: pytest.ExceptionInfo[InvalidInput]) -> list[list[Any]]:
    return [loc for loc, _ in _errors(exc)]


async def _order_type(pool: Pool, tenant: TenantKey) -> None:
    await create_event_type(pool, tenant.id, "order.created", "An order was placed", ORDER_V1)
    await add_schema_version(pool, tenant.id, "order.created", ORDER_V2)


# -- the catalog ---------------------------------------------------------------------------


async def test_versions_are_numbered_in_order_and_kept(pool: Pool, tenant: TenantKey) -> None:
    created = await create_event_type(pool, tenant.id, "order.created", "", ORDER_V1)
    assert created["latest_version"] == 1
    added = await add_schema_version(
        pool, tenant.id, "order.created", ORDER_V2, {"order_id": "o", "amount": 1.5}
    )
    assert added["version"] == 2
    assert orjson.loads(added["example"]) == {"order_id": "o", "amount": 1.5}
    assert (await get_event_type(pool, tenant.id, "order.created"))["latest_version"] == 2
    listed = await list_schema_versions(pool, tenant.id, "order.created", None, 10)
    assert [r["version"] for r in listed] == [2, 1]
    assert orjson.loads(listed[1]["schema"]) == ORDER_V1
    assert [
        r["version"] for r in await list_schema_versions(pool, tenant.id, "order.created", 2, 10)
    ] == [1]


async def test_a_type_without_schema_starts_with_no_versions(pool: Pool, tenant: TenantKey) -> None:
    created = await create_event_type(pool, tenant.id, "user.deleted", "gone")
    assert created["latest_version"] is None
    assert await list_schema_versions(pool, tenant.id, "user.deleted", None, 10) == []
    assert (await add_schema_version(pool, tenant.id, "user.deleted", {"type": "object"}))[
        "version"
    ] == 1


async def test_a_name_is_taken_once_per_tenant(pool: Pool, tenant: TenantKey) -> None:
    await create_event_type(pool, tenant.id, "order.created")
    with pytest.raises(Conflict):
        await create_event_type(pool, tenant.id, "order.created")
    other, _ = await create_tenant(pool, "Other")
    assert (await create_event_type(pool, other.id, "order.created"))["name"] == "order.created"


async def test_deprecating_twice_keeps_the_first_time(pool: Pool, tenant: TenantKey) -> None:
    await create_event_type(pool, tenant.id, "order.created", "old")
    first = await update_event_type(pool, tenant.id, "order.created", deprecated=True)
    assert first["deprecated_at"] is not None and first["description"] == "old"
    again = await update_event_type(pool, tenant.id, "order.created", "new", deprecated=True)
    assert again["deprecated_at"] == first["deprecated_at"] and again["description"] == "new"
    back = await update_event_type(pool, tenant.id, "order.created", deprecated=False)
    assert back["deprecated_at"] is None


@pytest.mark.parametrize(
    ("schema", "loc"),
    [
        ({"type": "strin"}, ["body", "schema", "type"]),
        (
            {"properties": {"a": {"minimum": "zero"}}},
            ["body", "schema", "properties", "a", "minimum"],
        ),
        ({"pattern": "("}, ["body", "schema", "pattern"]),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, ["body", "schema", "$schema"]),
        ({"$ref": "#/$defs/missing"}, ["body", "schema"]),
        # never fetched: a tenant must not make the server send requests
        ({"$ref": "http://169.254.169.254/latest/meta-data"}, ["body", "schema"]),
    ],
)
async def test_an_invalid_schema_is_refused_with_its_path(
    pool: Pool, tenant: TenantKey, schema: dict[str, Any], loc: list[Any]
) -> None:
    with pytest.raises(InvalidInput) as exc:
        await create_event_type(pool, tenant.id, "order.created", "", schema)
    assert _locs(exc) == [loc]
    with pytest.raises(NotFound):  # nothing was written
        await get_event_type(pool, tenant.id, "order.created")


async def test_an_example_must_match_its_schema(pool: Pool, tenant: TenantKey) -> None:
    await create_event_type(pool, tenant.id, "order.created", "", ORDER_V1)
    with pytest.raises(InvalidInput) as exc:
        await add_schema_version(pool, tenant.id, "order.created", ORDER_V2, {"order_id": 7})
    assert sorted(_locs(exc)) == [["body", "example"], ["body", "example", "order_id"]]
    assert (await get_event_type(pool, tenant.id, "order.created"))["latest_version"] == 1


async def test_example_data_of_latest_or_given_version(pool: Pool, tenant: TenantKey) -> None:
    await create_event_type(
        pool, tenant.id, "order.created", "", ORDER_V1, {"order_id": "o", "total": 1}
    )
    await add_schema_version(pool, tenant.id, "order.created", ORDER_V2)
    assert await example_data(pool, tenant.id, "order.created") == (2, None)
    found = await example_data(pool, tenant.id, "order.created", 1)
    assert found is not None and orjson.loads(found[1] or "") == {"order_id": "o", "total": 1}
    assert await example_data(pool, tenant.id, "order.created", 3) is None


class _CountingPool:
    """Stands in for the pool and records which named queries ran through it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.queries: list[str] = []
        self._names = {sql: name for name, sql in QUERIES.items()}

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.queries.append(self._names.get(query, query))
        return await self.pool.fetch(query, *args)


# -- check_events ----------------------------------------------------------------------------


async def test_valid_events_get_their_version_stamped(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    versions = await check_events(
        pool,
        tenant.id,
        [
            ("order.created", None, {"order_id": "a", "amount": 2.5}),  # latest: v2
            ("order.created", 1, {"order_id": "b", "total": 3, "lines": [{"sku": "x"}]}),
            ("order.created", 2, {"order_id": "c", "amount": 1}),
        ],
        [["body", "events", i] for i in range(3)],
    )
    assert versions == [2, 1, 2]


async def test_every_failing_path_of_every_event_is_listed(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    items: list[tuple[str, int | None, Any]] = [
        ("order.created", 1, {"order_id": 1, "total": -1, "lines": [{"sku": "a"}, {"qty": "2"}]}),
        ("order.created", 2, {"order_id": "fine", "amount": 1}),  # fine
        ("order.created", None, {"total": 5}),  # against v2: two missing, one extra
    ]
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, tenant.id, items, [["body", "events", i] for i in range(3)])
    assert _errors(exc) == [
        (["body", "events", 0, "data", "lines", 1], "'sku' is a required property"),
        (["body", "events", 0, "data", "lines", 1, "qty"], "'2' is not of type 'integer'"),
        (["body", "events", 0, "data", "order_id"], "1 is not of type 'string'"),
        (["body", "events", 0, "data", "total"], "-1 is less than the minimum of 0"),
        (["body", "events", 2, "data"], "'order_id' is a required property"),
        (["body", "events", 2, "data"], "'amount' is a required property"),
        (
            ["body", "events", 2, "data"],
            "Additional properties are not allowed ('total' was unexpected)",
        ),
    ]
    assert exc.value.detail.startswith("2 of 3 events")


async def test_a_single_event_reports_under_its_own_prefix(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, tenant.id, [("order.created", 1, {"order_id": "o"})], [["body"]])
    assert _locs(exc) == [["body", "data"]]


async def test_an_unknown_version_is_refused(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    await create_event_type(pool, tenant.id, "user.deleted")  # no schema at all
    items: list[tuple[str, int | None, Any]] = [
        ("order.created", 3, {}),
        ("order.created", 0, {}),
        ("user.deleted", 1, {}),
        ("never.registered", 1, {}),
    ]
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, tenant.id, items, [["body", "events", i] for i in range(4)])
    assert _locs(exc) == [["body", "events", i, "version"] for i in range(4)]
    assert "1 to 2" in _errors(exc)[0][1]


async def test_problems_are_listed_item_by_item(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    items: list[tuple[str, int | None, Any]] = [
        ("order.created", None, {"order_id": "a"}),  # data: amount missing
        ("order.created", 9, {}),  # version
        ("order.created", 1, {"order_id": 2, "total": 1}),  # data
    ]
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, tenant.id, items, [[i] for i in range(3)])
    assert _locs(exc) == [[0, "data"], [1, "version"], [2, "data", "order_id"]]


async def test_types_without_schema_pass_unchecked(pool: Pool, tenant: TenantKey) -> None:
    await create_event_type(pool, tenant.id, "user.deleted")
    items: list[tuple[str, int | None, Any]] = [
        ("user.deleted", None, {"anything": [1]}),
        ("never.registered", None, {"x": 1}),
    ]
    assert await check_events(pool, tenant.id, items, [["a"], ["b"]]) == [None, None]


async def test_unknown_types_are_refused_when_the_tenant_says_so(
    pool: Pool, tenant: TenantKey
) -> None:
    await _order_type(pool, tenant)
    await update_tenant_settings(pool, tenant.id, {"unknown_event_types": "refuse"})
    items: list[tuple[str, int | None, Any]] = [
        ("order.created", None, {"order_id": "a", "amount": 1}),
        ("order.cancelled", None, {}),
    ]
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, tenant.id, items, [["body", "events", 0], ["body", "events", 1]])
    assert _locs(exc) == [["body", "events", 1, "type"]]
    await update_tenant_settings(pool, tenant.id, {"unknown_event_types": "accept"})
    assert await check_events(pool, tenant.id, items, [["0"], ["1"]]) == [2, None]


async def test_deprecated_types_are_still_accepted(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    await update_event_type(pool, tenant.id, "order.created", deprecated=True)
    await update_tenant_settings(pool, tenant.id, {"unknown_event_types": "refuse"})
    good = ("order.created", None, {"order_id": "a", "amount": 1})
    assert await check_events(pool, tenant.id, [good], [["body"]]) == [2]


async def test_another_tenants_types_are_unknown(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    other, _ = await create_tenant(pool, "Other")
    # the other tenant's events are not checked against this tenant's schema
    loose = ("order.created", None, {"whatever": True})
    assert await check_events(pool, other.id, [loose], [["body"]]) == [None]
    await update_tenant_settings(pool, other.id, {"unknown_event_types": "refuse"})
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, other.id, [loose], [["body"]])
    assert _locs(exc) == [["body", "type"]]


async def test_warm_checks_cost_no_query(pool: Pool, tenant: TenantKey) -> None:
    await _order_type(pool, tenant)
    await create_event_type(pool, tenant.id, "user.deleted", "", {"type": "object"})
    event_types._VALIDATORS.clear()
    items: list[tuple[str, int | None, Any]] = [
        ("order.created", None, {"order_id": "a", "amount": 1}),
        ("order.created", 1, {"order_id": "b", "total": 1}),
        ("user.deleted", None, {}),
    ] * 100
    locs: list[list[str | int]] = [["body", "events", i] for i in range(len(items))]
    counting = _CountingPool(pool)
    conn = cast(Pool, counting)
    assert await check_events(conn, tenant.id, items, locs) == [2, 1, 1] * 100
    assert counting.queries == ["event_types_for_check", "schemas_for_check"]
    counting.queries.clear()
    assert await check_events(conn, tenant.id, items, locs) == [2, 1, 1] * 100
    assert counting.queries == []  # catalog rows and validators both cached
    # a change made through this process is seen at once
    await add_schema_version(pool, tenant.id, "user.deleted", {"type": "object"})
    assert await check_events(conn, tenant.id, items, locs) == [2, 1, 2] * 100


async def test_check_events_wants_a_prefix_per_item(pool: Pool, tenant: TenantKey) -> None:
    with pytest.raises(ValueError, match="one location prefix per item"):
        await check_events(pool, tenant.id, [("a", None, {})], [])
    assert await check_events(pool, tenant.id, [], []) == []


# -- pure parts ------------------------------------------------------------------------------


def test_validator_cache_drops_the_least_recently_used() -> None:
    cache = ValidatorCache(size=2)
    a, b, c = (compile_schema({"type": t}) for t in ("string", "integer", "object"))
    cache.put(("t", 1), a)
    cache.put(("t", 2), b)
    assert cache.get(("t", 1)) is a  # now the most recent
    cache.put(("t", 3), c)
    assert len(cache) == 2
    assert cache.get(("t", 2)) is None and cache.get(("t", 1)) is a and cache.get(("t", 3)) is c


@pytest.mark.parametrize(
    ("schema", "problems"),
    [
        ({"type": "object", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {}}}, []),
        (
            {
                "$id": "https://x.example/o",
                "$defs": {"s": {"$id": "s", "$ref": "#/$defs/q", "$defs": {"q": {}}}},
            },
            [],
        ),
        ({"$ref": "https://json-schema.org/draft/2020-12/schema"}, []),
        ({"$schema": "https://json-schema.org/draft/2020-12/schema#"}, []),
        ([], [([], "a schema is a JSON object")]),
    ],
)
def test_schema_problems(schema: Any, problems: Sequence[Any]) -> None:
    assert schema_problems(schema) == problems


def test_deep_schemas_are_refused_without_recursing() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(10_000):
        node["not"] = {}
        node = node["not"]
    assert schema_problems(deep)[0][1].startswith("the schema is nested more than")


def test_deep_data_under_a_recursive_schema_is_a_problem_not_a_crash() -> None:
    tree = compile_schema({"type": "object", "properties": {"child": {"$ref": "#"}}})
    data: dict[str, Any] = {}
    node = data
    for _ in range(5_000):
        node["child"] = {}
        node = node["child"]
    assert data_problems(tree, data) == [([], "the data is nested too deeply to validate")]


def test_long_messages_are_cut() -> None:
    problems = data_problems(compile_schema({"type": "string"}), {"k": "v" * 10_000})
    assert len(problems) == 1 and len(problems[0][1]) == 300 and problems[0][1].endswith("...")
