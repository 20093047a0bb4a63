"""The OpenAPI document: valid 3.1, and true of the live API.

The schemathesis test serves the whole app over HTTP on 127.0.0.1 (real Postgres and Redis),
seeds two tenants with real objects, and sends every operation two sets of requests with the
two tenants' keys: schemathesis' deterministic boundary cases (limits, missing fields, wrong
types, other methods) and a few hypothesis-generated ones, valid and invalid, on generated ids
and on each tenant's real ones (fixed seed, no shrinking). Every check schemathesis has runs
(``--checks all``): every response documented for its operation (status, content type,
headers, body), nothing 5xx, invalid input a 4xx, valid input never refused for its shape
(a 422 for what it means, an error with a ``kind``, is the one thing allowed), 401 without
the key or with a wrong one, 405s whose ``Allow`` is the document's, and no object of one
tenant reachable with the other's key. Last, schemathesis' state machine runs sequences of
calls for each tenant that follow the document's links (create, then read, change, delete
what the answer named), every check on every step.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given
from hypothesis.strategies import SearchStrategy
from openapi_spec_validator import OpenAPIV31SpecValidator
from redis.asyncio import Redis
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from composition.web import build_app
from hookline.db import Pool
from hookline.settings import Settings
from hookline.tenants import create_tenant
from tests.api.seeding import Seeded, api_routes, path_parameters, seed
from tests.conftest import TenantKey
from tests.receiver import wait_for

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]

# examples per operation, generation mode and tenant/id variant (the whole test took about
# 17 s on 2 cores with 35 operations)
MAX_EXAMPLES = 6
# scenarios (sequences of up to 8 linked calls) per tenant in the stateful phase
STATEFUL_SCENARIOS = 15


def _meaning_not_shape(ctx: Any, response: Any, case: Case) -> bool | None:
    """``positive_data_acceptance``, except that a schema-valid request may be refused for
    what it means (an unknown subscriber, a private address): such a 422 names a ``kind``
    on each error, and no shape the document allows is ever refused."""
    if response.status_code == 422:
        errors = response.json().get("errors") or []
        if errors and all("kind" in e for e in errors):
            return None
    return positive_data_acceptance(ctx, response, case)


# every check schemathesis has ("--checks all"), the one above for positive_data_acceptance
CHECKS = cast(
    list[CheckFunction],
    [
        _meaning_not_shape if check is positive_data_acceptance else check
        for check in REGISTRY.get_all()
    ],
)

# Disagreements found and handed over to the routes' owners, each to be deleted with its fix:
# (operation, schemathesis' failure class, a regex found in the failure) -> what is wrong
KNOWN: dict[tuple[str, str, str], str] = {}

_KNOWN = "known"  # the first item of a KNOWN failure's key in _fuzz's findings

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260101,
        # the test sends each tenant's key itself; generated or removed keys would be 401s
        "generation": {
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,
        },
        # invalid input of any kind is a client error; which 4xx is the route's to choose
        "checks": {"negative_data_rejection": {"expected-statuses": ["4xx"]}},
    }
)


async def test_document_is_valid_openapi_3_1(api: httpx.AsyncClient) -> None:
    r = await api.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    document = r.json()
    assert document["openapi"].startswith("3.1.")
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in OpenAPIV31SpecValidator(document).iter_errors()
    ]
    assert not errors, "\n".join(errors)


async def test_links_lead_from_what_a_post_made_to_the_operations_on_it(
    api: httpx.AsyncClient,
) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    operation_ids = {op["operationId"] for ops in paths.values() for op in ops.values()}
    links = paths["/v1/endpoints"]["post"]["responses"]["201"]["links"]
    assert links["get_v1_endpoints_id"] == {
        "operationId": "get_v1_endpoints_id",
        "parameters": {"id": "$response.body#/id"},
    }
    assert {"patch_v1_endpoints_id", "delete_v1_endpoints_id"} <= links.keys()
    subscribers = paths["/v1/subscribers"]["post"]["responses"]["201"]["links"]
    assert subscribers["get_v1_subscribers_uid"]["parameters"] == {"uid": "$response.body#/uid"}
    # a path that already names one thing keeps it from the request
    schema = paths["/v1/event-types/{name}/schemas"]["post"]["responses"]["201"]["links"]
    assert schema["get_v1_event-types_name_schemas_version"]["parameters"] == {
        "name": "$request.path.name",
        "version": "$response.body#/version",
    }
    for ops in paths.values():
        for op in ops.values():
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in operation_ids, link
    # nothing links from a list or a read: only what a POST made
    assert "links" not in paths["/v1/endpoints"]["get"]["responses"]["200"]


async def test_every_405_lists_every_method_its_path_takes(api: httpx.AsyncClient) -> None:
    """Each operation is a route of its own; a 405 still names all of its path's methods:
    those of every documented path it fits, or of the one it is exactly
    (``/v1/events/batch`` is that resource, not also an event id)."""
    document = (await api.get("/openapi.json")).json()

    def methods(path: str) -> set[str]:
        found = set()
        for template, operations in document["paths"].items():
            if template == path or (
                path not in document["paths"]
                and re.fullmatch(re.sub(r"{[a-z_]+}", "[^/]+", template), path)
            ):
                found |= {m.upper() for m in operations if m != "parameters"}
        return found | ({"HEAD"} if "GET" in found else set())

    for template in document["paths"]:
        path = re.sub(r"{[a-z_]+}", "x_1", template)
        expected = methods(path)
        unused = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in expected)
        r = await api.request(unused, path)
        assert r.status_code == 405, (unused, path, r.text)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed == expected, (path, allowed)
        assert r.headers["content-type"] == "application/problem+json"
    # a path of several operations: the case the route that answers knew only one of
    assert methods("/v1/endpoints/x_1") >= {"GET", "PATCH", "DELETE"}


async def test_docs_page_renders_the_document_from_vendored_assets(api: httpx.AsyncClient) -> None:
    r = await api.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text
    # only this server: no CDN, no web fonts, and the policy stops anything that tries
    assert "http://" not in r.text and "https://" not in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    for src in ("/static/docs.js", *_script_sources(r.text)):
        asset = await api.get(src)
        assert asset.status_code == 200, src


def _script_sources(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('<script src="')[1:]]


@dataclass
class Live:
    url: str
    tenants: tuple[Seeded, Seeded]


@pytest.fixture
async def live(settings: Settings, pool: Pool, redis: Redis) -> AsyncIterator[Live]:
    """The app behind uvicorn on a free port of 127.0.0.1, in this test's event loop."""
    app = build_app(settings, pool, redis)
    # port 0: the system picks a free one. (A socket bound here and handed to uvicorn
    # instead makes every request wait ~40 ms on delayed ACKs.)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:

        def started() -> bool:
            assert not task.done(), "uvicorn stopped before it started"
            return bool(server.started)

        await wait_for(started, what="uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        routes = api_routes(app.api.routes)
        async with httpx.AsyncClient(base_url=url) as client:
            tenants = []
            for tag in ("a", "b"):
                created, key = await create_tenant(pool, f"Tenant {tag.upper()}")
                tenants.append(await seed(client, TenantKey(created.id, key), tag, routes))
        yield Live(url, (tenants[0], tenants[1]))
    finally:
        server.should_exit = True
        await task


@pytest.mark.slow
async def test_live_api_conforms_to_its_document(live: Live) -> None:
    # schemathesis and hypothesis block; the server goes on answering in this loop meanwhile
    found = await asyncio.to_thread(_fuzz, live)
    seen = {key[1:] for key in found if key[0] == _KNOWN}
    for stale in KNOWN.keys() - seen:
        warnings.warn(f"{stale} no longer fails: delete it from KNOWN", stacklevel=1)
    failures = [text for key, text in found.items() if key[0] != _KNOWN]
    assert not failures, f"{len(failures)} disagreement(s) with /openapi.json:\n\n" + (
        "\n\n".join(failures)
    )


def _fuzz(live: Live) -> dict[tuple[str, ...], str]:
    """Failures by operation, phase and kind, each with its first reproduction."""
    document = requests.get(f"{live.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    failures: dict[tuple[str, ...], str] = {}
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:
            failures[("schema", str(result.err()))] = f"unusable operation: {result.err()}"
    # deleting a seeded object early would leave the operations after it only 404s to test
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    with requests.Session() as session:
        for operation in operations:
            _coverage(schema, operation, live, session, failures)
            _generated(operation, live, session, failures)
        for owner in live.tenants:
            _stateful(schema, owner, live, session, failures)
    return failures


def _stateful(
    schema: Any,
    owner: Seeded,
    live: Live,
    session: requests.Session,
    failures: dict[tuple[str, ...], str],
) -> None:
    """Schemathesis' state machine, one tenant's key: sequences of calls that follow the
    document's links (make a subscriber, then read, change, delete it by the ``uid`` the
    answer gave), every check on every step. Fails if no link was ever followed to an
    object that exists: the document's links would then be wrong, or missing."""
    followed: list[str] = []
    finished: list[None] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            _authorize(case, owner)
            return {"base_url": live.url, "session": session, "timeout": 10}

        def step(self, input: Any) -> Any:
            output = super().step(input)
            link = input.transition
            ok = output.response.status_code < 300
            if link and not link.is_inferred and input.is_applied and ok:
                followed.append(link.id)
            return output

        def teardown(self) -> None:
            finished.append(None)
            super().teardown()

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            try:
                case.validate_response(
                    response, checks=CHECKS, transport_kwargs=kwargs, recorder=self.recorder
                )
            except Exception as exc:
                _record(exc, failures, case.operation.label, "stateful", owner.tenant.id)

    # A scenario's draws depend on what the server answered (which objects exist to link
    # to), so hypothesis may find a replayed prefix drawing differently and stop the run as
    # flaky; schemathesis' own runner then starts again with the next seed, and so does this.
    scenarios = 0
    for n in range(STATEFUL_SCENARIOS):
        try:
            hypothesis.seed(CONFIG.seed + n)(Machine).run(
                settings=hypothesis.settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=8,
                    database=None,
                    deadline=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
            )
            break
        except hypothesis.errors.Flaky:
            scenarios = len(finished)
            if scenarios >= STATEFUL_SCENARIOS:
                break
    if not followed:
        failures[("stateful", owner.tenant.id)] = "no link of the document was ever followed"


def _coverage(
    schema: Any,
    operation: Operation,
    live: Live,
    session: requests.Session,
    failures: dict[tuple[str, ...], str],
) -> None:
    """Schemathesis' boundary cases (limits, missing fields, wrong types, other methods), each
    sent once, by the two tenants in turn, on the sender's real objects unless the case is
    about the path itself."""
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(operation=operation),
    )
    for n, case in enumerate(cases):
        owner = live.tenants[n % 2]
        real_ids = path_parameters(operation.path, owner)
        data = case.meta.phase.data if case.meta else None
        about_path = getattr(data, "parameter_location", None) == ParameterLocation.PATH
        if real_ids and not about_path:
            case.path_parameters = dict(real_ids)
        try:
            _call(case, owner, live, session)
        except BaseException as exc:
            _record(exc, failures, operation.label, "coverage", owner.tenant.id)


def _generated(
    operation: Operation,
    live: Live,
    session: requests.Session,
    failures: dict[tuple[str, ...], str],
) -> None:
    """Hypothesis-generated cases, valid and invalid, on generated ids and on each tenant's
    real ones: fixed seed, no shrinking, a few examples each."""
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for owner, real_ids in _variants(operation.path, live.tenants):
            strategy = operation.as_strategy(mode, path_parameters=real_ids)
            try:
                _examples(strategy, _caller(owner, live, session))()
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to make invalid: no parameters, no body
            except BaseException as exc:
                ids = "real ids" if real_ids else "generated ids"
                _record(exc, failures, operation.label, f"{mode.value}, {ids}", owner.tenant.id)


def _record(
    exc: BaseException, failures: dict[tuple[str, ...], str], label: str, *how: str
) -> None:
    """Keep the first case of each kind of failure an operation shows; note known ones."""
    if not isinstance(exc, Exception | BaseExceptionGroup):
        raise exc  # KeyboardInterrupt and the like
    found = getattr(exc, "exceptions", None) or [exc]
    kinds = tuple(sorted({type(e).__name__ for e in found}))
    text = str(exc)
    for known_label, known_kind, pattern in KNOWN:
        if (label, kinds) == (known_label, (known_kind,)) and re.search(pattern, text):
            failures[(_KNOWN, known_label, known_kind, pattern)] = text
            return
    failures.setdefault((label, *kinds), f"{label} [{', '.join(how)}]\n{text}")


def _variants(path: str, tenants: tuple[Seeded, ...]) -> list[tuple[Seeded, dict[str, str] | None]]:
    """Who calls, on which ids: each tenant on its own real objects, and on generated ids."""
    variants: list[tuple[Seeded, dict[str, str] | None]] = [(tenants[0], None)]
    if "{" in path:
        for owner in tenants:
            ids = path_parameters(path, owner)
            if ids is not None:
                variants.append((owner, ids))
    else:
        variants.append((tenants[1], None))
    return variants


def _examples(strategy: SearchStrategy[Case], body: Callable[[Case], None]) -> Callable[[], None]:
    run: Callable[[], None] = hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report what was found
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )(given(strategy)(body))
    return run


def _caller(owner: Seeded, live: Live, session: requests.Session) -> Callable[[Case], None]:
    def call(case: Case) -> None:
        _call(case, owner, live, session)

    return call


def _call(case: Case, owner: Seeded, live: Live, session: requests.Session) -> None:
    _authorize(case, owner)
    case.call_and_validate(base_url=live.url, session=session, checks=CHECKS, timeout=10)


def _authorize(case: Case, owner: Seeded) -> None:
    # the tenant's key goes on the case, marked as explicit as schemathesis' own auth
    # providers mark it: the checks that probe without it (ignored_auth) then know it is
    # the real key, and that a 2xx with it proves nothing by itself
    if case.headers is None:
        case.headers = CaseInsensitiveDict()
    case.headers["Authorization"] = owner.headers["authorization"]
    case._has_explicit_auth = True


async def test_input_postgres_cannot_store_is_refused_not_crashed(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    h = tenant.headers
    r = await api.post("/v1/subscribers", headers=h, json={"uid": "c1", "name": "a\x00b"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "name"], r.text
    r = await api.post(
        "/v1/events", headers=h, json={"type": "t", "data": {"k": ["ok", {"\x00": 1}]}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "data", "k", 1]
    r = await api.get("/v1/endpoints", headers=h, params={"subscriber": "\x00"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "subscriber"]
    for path in ("/v1/subscribers/a%00b", "/v1/endpoints/ep_%20x", "/v1/events/" + "e" * 201):
        r = await api.get(path, headers=h)
        assert r.status_code == 404 and r.json()["status"] == 404, (path, r.text)


async def test_bodies_are_read_as_strictly_as_the_document_says(
    api: httpx.AsyncClient, tenant: TenantKey
) -> None:
    # lax pydantic would take 5 for "5" and 0 for false; the schema says string, boolean
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": 5})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "uid"], r.text
    r = await api.post("/v1/subscribers", headers=tenant.headers, json={"uid": "c1"})
    assert r.status_code == 201, r.text
