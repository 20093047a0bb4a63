"""Event types in the kernel: schema versions, and the check ingest runs on every event."""

from __future__ import annotations

import functools
import time
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
    example_data,
    get_event_type,
    list_schema_versions,
    update_event_type,
)
from hookline.event_types import create_event_type as _create_event_type
from hookline.json_schema import (
    MAX_PROBLEMS,
    MAX_STEPS,
    TOO_COSTLY,
    TOO_DEEP,
    ValidatorCache,
    compile_schema,
    data_problems,
    quick_data_problems,
    schema_problems,
)
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

# the kernel's tests leave quotas to tests/api/test_quotas.py
create_event_type = functools.partial(_create_event_type, quota=0)


def _errors(exc: pytest.ExceptionInfo[InvalidInput]) -> list[tuple[list[Any], str]]:
    assert exc.value.problems
    return [(list(p.at), p.said()) for p in exc.value.problems]


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
        ({"type": "strin"}, ["schema", "type"]),
        (
            {"properties": {"a": {"minimum": "zero"}}},
            ["schema", "properties", "a", "minimum"],
        ),
        ({"pattern": "("}, ["schema", "pattern"]),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, ["schema", "$schema"]),
        ({"$ref": "#/$defs/missing"}, ["schema"]),
        # never fetched: a tenant must not make the server send requests
        ({"$ref": "http://169.254.169.254/latest/meta-data"}, ["schema"]),
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
    assert sorted(_locs(exc)) == [["example"], ["example", "order_id"]]
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
    assert data_problems(tree, data) == [([], TOO_DEEP)]


def test_long_messages_are_cut() -> None:
    problems = data_problems(compile_schema({"type": "string"}), {"k": "v" * 10_000})
    assert len(problems) == 1 and len(problems[0][1]) == 300 and problems[0][1].endswith("...")


# -- nothing a tenant writes runs unbounded --------------------------------------------------


def _timed(validator: Any, data: Any) -> tuple[list[Any], float]:
    started = time.perf_counter()
    problems = data_problems(validator, data)
    return problems, time.perf_counter() - started


@pytest.mark.parametrize(
    ("text", "fits"),
    [
        ("a" * 28 + "!", False),  # 10.7 s under Python's re
        ("a" * 10_000 + "!", False),
        ("a" * 10_000, True),
        ("", False),
    ],
)
def test_a_backtracking_pattern_runs_in_linear_time(text: str, fits: bool) -> None:
    problems, took = _timed(compile_schema({"pattern": "^(a+)+$"}), text)
    assert (problems == []) is fits
    assert took < 0.1, f"{took:.3f} s"


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),  # numbers by value
        ([0, -0.0], False),
        ([2**53, float(2**53)], False),
        ([2**70, float(2**70)], False),  # past 64 bits, by digits
        ([2**70, 2**70 + 1], True),
        ([0.1, 0.2], True),
        ([True, 1], True),  # a boolean is no number
        ([False, 0], True),
        ([False, None], True),
        ([None, None], False),
        (["1", 1], True),
        (["a", "a"], False),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),  # objects: key order irrelevant
        ([{"a": 1}, {"a": 1, "b": None}], True),
        ([{"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2.0}]}], False),  # ... all the way down
        ([{"a": True}, {"a": 1}], True),
        ([[1, 2], [2, 1]], True),  # arrays: order matters
        ([[1, 2], [1, 2]], False),
        ([[], {}], True),
        ([[True], [1]], True),
        ([], True),
        ([2**61 - 1 + k * (2**61 - 1) for k in range(5)], True),  # equal hashes, not equal
    ],
)
def test_unique_items_follows_json_schema_equality(items: list[Any], unique: bool) -> None:
    validator = compile_schema({"type": "array", "uniqueItems": True})
    assert (data_problems(validator, items) == []) is unique


def test_unique_items_over_20000_objects_is_linear() -> None:
    validator = compile_schema({"type": "array", "uniqueItems": True})
    rows: list[Any] = [{"id": 10_000 + i} for i in range(20_000)]
    assert 250_000 < len(orjson.dumps(rows)) < 300_000  # the probe: 409 s before
    problems, took = _timed(validator, rows)
    assert problems == [] and took < 0.5
    rows.insert(12_345, {"id": 10_042.0})
    problems, took = _timed(validator, rows)
    assert problems == [([], "has non-unique elements: item 12345 equals item 42")]
    assert took < 0.5


@pytest.mark.parametrize(
    ("schema", "path", "why"),
    [
        ({"pattern": "^(?=.*[0-9]).{8,}$"}, ["pattern"], "lookaheads are not supported"),
        ({"pattern": "^(?!admin)"}, ["pattern"], "lookaheads are not supported"),
        ({"pattern": "(?<=@)example"}, ["pattern"], "lookbehinds are not supported"),
        ({"pattern": "(?<!x)y"}, ["pattern"], "lookbehinds are not supported"),
        ({"pattern": "^(a)\\1$"}, ["pattern"], "backreferences are not supported"),
        ({"pattern": "^(?<q>a)\\k<q>$"}, ["pattern"], "backreferences are not supported"),
        (
            {"properties": {"a": {"items": {"pattern": "(?=x)"}}}},
            ["properties", "a", "items", "pattern"],
            "lookaheads",
        ),
        ({"$defs": {"d": {"pattern": "(?<=x)"}}}, ["$defs", "d", "pattern"], "lookbehinds"),
        # the key is named in the message; the path is the object holding it
        ({"patternProperties": {"^(?!x)": {}}}, ["patternProperties"], "'^(?!x)' cannot"),
        ({"pattern": "a++"}, ["pattern"], "is not a valid pattern"),
        ({"pattern": "("}, ["pattern"], "is not a valid pattern: missing )"),
        ({"pattern": "\\p{Letter}"}, ["pattern"], "is not a valid pattern"),
        # linear, but 86,000 instructions of RE2 to compile and to step through per byte
        ({"pattern": "^[\\p{L}\\p{N}_-]{1,64}$"}, ["pattern"], "is too complex"),
    ],
)
def test_patterns_re2_cannot_run_are_refused(
    schema: dict[str, Any], path: list[Any], why: str
) -> None:
    problems = schema_problems(schema)
    assert [p for p, _ in problems] == [path]
    assert why in problems[0][1]
    if "supported" in why:
        assert "linear in the text" in problems[0][1]


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^\\u0041\\u{1F600}$", "A\U0001f600", True),  # ECMA-262 escapes, translated
        ("^\\d+$", "123", True),
        ("^\\d+$", "\u0663", False),  # ASCII digits, as in ECMA-262 (re matched any)
        ("^a$", "a\n", False),  # $ is the end, as in ECMA-262 (re: before a final newline)
        ("^\\p{L}+$", "\u00e9t\u00e9", True),
        ("^\\p{Greek}+$", "\u03b1\u03b2", True),
        ("ab", "xaby", True),  # a search, not a full match
        ("(?i)^abc$", "ABC", True),
    ],
)
def test_patterns_match_as_documented(pattern: str, text: str, matches: bool) -> None:
    assert schema_problems({"pattern": pattern}) == []
    assert (data_problems(compile_schema({"pattern": pattern}), text) == []) is matches


def _chain(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = {"next": leaf}
    return leaf


EXPONENTIAL = {
    "$defs": {
        "node": {
            "anyOf": [
                {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}},
                {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/node"}},
                    "minProperties": 2,
                },
            ]
        }
    },
    "$ref": "#/$defs/node",
}


@pytest.mark.parametrize(
    ("name", "schema", "data"),
    [
        # both branches recurse and both fail at the leaf: 2^28 evaluations unbounded
        ("exponential anyOf", EXPONENTIAL, _chain(28, 1)),
        (
            "oneOf tries every branch",
            {
                "$defs": {"n": {"oneOf": [{"properties": {"next": {"$ref": "#/$defs/n"}}}] * 3}},
                "$ref": "#/$defs/n",
            },
            _chain(20, 1),
        ),
        ("NFA-bound pattern", {"pattern": "[ab]*a[ab]{200}c"}, "ab" * 100_000),
        (
            "errors quoting a big instance",
            {"anyOf": [{"type": "string"}] * 900},
            {f"k{i}": "v" * 50 for i in range(2_000)},
        ),
        ("falses quoting a big instance", {"anyOf": [False] * 900}, ["x" * 100] * 1_000),
        ("enum scans", {"items": {"enum": [f"value-{i}" for i in range(2_000)]}}, ["nope"] * 5_000),
        (
            "empty item schemas",
            {"anyOf": [{"items": {}, "minItems": 10**9}] * 100},
            list(range(100_000)),
        ),
    ],
)
def test_costly_validations_stop_at_the_budget_fast(name: str, schema: Any, data: Any) -> None:
    assert schema_problems(schema) == []
    problems, took = _timed(compile_schema(schema), data)
    assert problems == [([], TOO_COSTLY)], name
    assert took < 1.0, f"{name}: {took:.2f} s"  # ~0.2 to 0.35 s here; unbounded: minutes


def test_the_budget_counts_steps_not_time() -> None:
    validator = compile_schema(EXPONENTIAL)
    data = _chain(8, 1)
    first = quick_data_problems(validator, data, MAX_STEPS)
    again = quick_data_problems(validator, data, MAX_STEPS)
    assert first == again and first[0] is not None and 1_000 < first[1] < MAX_STEPS
    # one step fewer than it needs: not decided, and the full budget decides it the same
    assert quick_data_problems(validator, data, first[1] - 1)[0] is None
    assert data_problems(validator, data) == first[0]
    assert data_problems(validator, data, steps=first[1] - 1) == [([], TOO_COSTLY)]


def test_ordinary_big_events_fit_the_budget() -> None:
    line = {
        "type": "object",
        "required": ["sku", "qty"],
        "properties": {
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4,8}$"},
            "qty": {"type": "integer", "minimum": 1},
            "unit_price": {"type": "number", "minimum": 0},
            "title": {"type": "string", "maxLength": 500},
        },
    }
    order = {
        "type": "object",
        "required": ["id", "customer", "lines"],
        "properties": {
            "id": {"type": "string", "pattern": "^ord_[0-9A-Za-z]{12,24}$"},
            "currency": {"enum": ["EUR", "USD", "GBP", "JPY"]},
            "customer": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "address": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "country": {"pattern": "^[A-Z]{2}$"},
                        },
                    },
                },
            },
            "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
            "note": {"type": "string"},
        },
    }
    schema = {
        "type": "object",
        "properties": {"orders": {"type": "array", "items": order}},
        "$defs": {"line": line},
    }
    assert schema_problems(schema) == []
    orders = [
        {
            "id": f"ord_{i:016d}",
            "currency": "EUR",
            "customer": {
                "email": f"c{i}@example.com",
                "address": {"city": "London", "country": "GB"},
            },
            "lines": [
                {
                    "sku": f"ABC-{1000 + k}",
                    "qty": 1 + k,
                    "unit_price": 4.5,
                    "title": "T-shirt, size M",
                }
                for k in range(3)
            ],
            "note": "Leave the parcel with the neighbour at number 3 if nobody is at home. " * 30,
        }
        for i in range(420)
    ]
    data = {"orders": orders}
    assert len(orjson.dumps(data)) > 1_000_000
    problems, spent = quick_data_problems(compile_schema(schema), data, MAX_STEPS)
    assert problems == [] and spent < MAX_STEPS * 0.8


def test_problems_are_capped_with_a_count() -> None:
    validator = compile_schema({"additionalProperties": {"type": "string"}})
    problems = data_problems(validator, {f"k{i:03}": i for i in range(150)})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == ([], "and 50 more problems, not listed")


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        (
            {"properties": {f"p{i}": {"description": "x" * 60} for i in range(1_000)}},
            "bytes as JSON; the limit is 65536",
        ),
        (
            {"properties": {f"p{i}": {} for i in range(1_500)}},
            "objects and booleans (subschemas); the limit is 1000",
        ),
        (
            {"enum": [{f"k{i}": i for i in range(5)} for _ in range(900)]},
            "keywords and property names; the limit is 4096",
        ),
        (
            {"properties": {f"p{i}": {"pattern": f"^{i}[a-z]{{1,900}}$"} for i in range(40)}},
            "patterns are too many or too complex together",
        ),
        (
            {"properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#"}}},
            "$schema may appear only at the root",
        ),
    ],
)
def test_schemas_are_capped(schema: dict[str, Any], says: str) -> None:
    started = time.perf_counter()
    problems = schema_problems(schema)
    assert len(problems) == 1 and says in problems[0][1], problems
    assert time.perf_counter() - started < 0.5


def test_a_929_kb_schema_is_refused_by_its_size_alone() -> None:
    schema = {
        "properties": {
            f"field_{i}": {"type": "string", "description": "x" * 40} for i in range(10_500)
        }
    }
    assert 900_000 < len(orjson.dumps(schema)) < 1_000_000
    started = time.perf_counter()
    assert "the limit is 65536" in schema_problems(schema)[0][1]
    assert time.perf_counter() - started < 0.1  # 5.2 s before, on the event loop


def test_a_nested_dialect_cannot_switch_validators() -> None:
    # registered before $schema was refused below the root: jsonschema would have used the
    # draft-07 class, with Python's re and no budget, for the subschema
    validator = compile_schema(
        {
            "properties": {"a": {"$ref": "#/x-defs/p"}},
            "x-defs": {
                "p": {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": "^(a+)+$"}
            },
        }
    )
    problems, took = _timed(validator, {"a": "a" * 30 + "!"})
    assert problems == [(["a"], "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' does not match '^(a+)+$'")]
    assert took < 0.1
    # and another draft's meta-schema is out of reach
    assert schema_problems({"$ref": "http://json-schema.org/draft-07/schema#"})[0][1].startswith(
        "$ref"
    )


async def test_big_schemas_and_costly_examples_are_refused_off_the_event_loop(
    pool: Pool, tenant: TenantKey
) -> None:
    with pytest.raises(InvalidInput) as exc:
        await create_event_type(pool, tenant.id, "tree.grown", "", EXPONENTIAL, _chain(28, 1))
    assert _errors(exc) == [(["example"], TOO_COSTLY)]
    with pytest.raises(InvalidInput) as exc:
        await create_event_type(
            pool, tenant.id, "big.one", "", {"type": "object"}, {"x": "y" * 70_000}
        )
    assert _locs(exc) == [["example"]] and "the limit is 65536" in _errors(exc)[0][1]


async def test_costly_events_are_refused_and_cheap_ones_checked_in_one_batch(
    pool: Pool, tenant: TenantKey
) -> None:
    await create_event_type(pool, tenant.id, "tree.grown", "", EXPONENTIAL)
    items: list[tuple[str, int | None, Any]] = [
        ("tree.grown", None, _chain(3, {})),  # cheap and valid: on the event loop
        ("tree.grown", None, _chain(28, 1)),  # past the loop's share: a worker thread
        ("tree.grown", None, _chain(2, 1)),  # cheap, but after: the same worker
    ]
    with pytest.raises(InvalidInput) as exc:
        await check_events(pool, tenant.id, items, [["body", "events", i] for i in range(3)])
    assert [loc for loc, _ in _errors(exc)] == [
        ["body", "events", 1, "data"],
        ["body", "events", 2, "data"],
    ]
    assert _errors(exc)[0][1] == TOO_COSTLY
    assert "is not valid under any of the given schemas" in _errors(exc)[1][1]
