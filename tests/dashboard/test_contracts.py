"""The dashboard's forms and the API take exactly the same input: for endpoints, replays
and delivery filters, one table of values each, every value judged by both (they share
the kernel's types, so this fails if either side grows a rule of its own)."""

from __future__ import annotations

from typing import Any, get_args

import orjson
import pytest
from pydantic import ValidationError
from starlette.datastructures import FormData, QueryParams, UploadFile

from api.endpoint_models import EndpointIn
from api.replays import ReplaysIn
from api.schemas import DeliveriesQuery
from dashboard.deliveries import read_filters
from dashboard.endpoint_form import blank_form, read_form
from dashboard.replays import ReplayForm
from hookline import deliveries, replays
from hookline import endpoint_fields as spec
from hookline.errors import InvalidInput
from hookline.sessions import Session

_OPERATOR = Session(tenant_id="ten_1", tenant_name="Acme", csrf_token="t", user_id="usr_1")
_BASE = {"subscriber": "cust_1", "url": "https://example.com/hooks"}

# (field, as JSON, as the form posts it, accepted)
CASES: list[tuple[str, Any, str | list[str], bool]] = [
    ("url", "", "", False),
    ("url", "https://example.com/" + "x" * 2028, "https://example.com/" + "x" * 2028, True),
    ("url", "https://example.com/" + "x" * 2029, "https://example.com/" + "x" * 2029, False),
    ("description", "x" * 1000, "x" * 1000, True),
    ("description", "x" * 1001, "x" * 1001, False),
    ("subscriber", "cust.1:a-b_c", "cust.1:a-b_c", True),
    ("subscriber", "two words", "two words", False),
    ("subscriber", "x" * 201, "x" * 201, False),
    ("event_types", ["order.created"], ["order.created"], True),
    ("event_types", ["not a name"], ["not a name"], False),
    ("event_types", [f"t.{i}" for i in range(500)], [f"t.{i}" for i in range(500)], True),
    ("event_types", [f"t.{i}" for i in range(501)], [f"t.{i}" for i in range(501)], False),
    ("timeout", 0.01, "0.01", True),
    ("timeout", 0.009, "0.009", False),
    ("timeout", 30, "30", True),
    ("timeout", 30.5, "30.5", False),
    ("timeout", None, "", True),
    ("rate_limit", 0, "0", False),
    ("rate_limit", 1, "1", True),
    ("rate_limit", 100_000, "100000", True),
    ("rate_limit", 100_001, "100001", False),
    ("rate_limit", None, "", True),
    ("max_in_flight", 0, "0", False),
    ("max_in_flight", 1000, "1000", True),
    ("max_in_flight", 1001, "1001", False),
    *[(name, value, value, True) for name in spec.CHOICES for value in spec.options(name)],
    *[(name, "other", "other", False) for name in spec.CHOICES],
]


def _form(field: str, value: str | list[str]) -> FormData:
    posted: dict[str, str] = {**blank_form().values, **_BASE}
    # event types are checkboxes: none ticked sends nothing at all
    items: list[tuple[str, str | UploadFile]] = [
        (k, v) for k, v in posted.items() if k not in (field, "event_types")
    ]
    items += [(field, v) for v in value] if isinstance(value, list) else [(field, value)]
    return FormData(items)


@pytest.mark.parametrize(("field", "as_json", "as_form", "accepted"), CASES)
def test_the_form_and_the_api_agree(
    field: str, as_json: Any, as_form: str | list[str], accepted: bool
) -> None:
    try:
        EndpointIn.model_validate({**_BASE, field: as_json})
        api_accepts = True
    except ValidationError:
        api_accepts = False
    form = read_form(_form(field, as_form), creating=True, session=_OPERATOR)
    assert api_accepts is accepted
    assert (field not in form.errors) is accepted, form.errors
    assert not {name: e for name, e in form.errors.items() if name != field}  # nothing else


def test_a_new_endpoint_starts_from_the_same_defaults_either_way() -> None:
    from_api = EndpointIn.model_validate(_BASE).model_dump()
    form = read_form(_form("url", _BASE["url"]), creating=True, session=_OPERATOR)
    assert not form.errors
    for name, value in form.fields.items():
        assert from_api[name] == value, name
    assert {k: from_api[k] for k in spec.DEFAULTS} == spec.DEFAULTS


def test_every_choice_has_a_line_for_each_of_its_options() -> None:
    for name, (kind, labels) in spec.CHOICES.items():
        assert tuple(labels) == get_args(kind), name


# -- replays: (field, as JSON, as the form posts it, accepted) ---------------------------

REPLAY_CASES: list[tuple[str, Any, str | list[str], bool]] = [
    ("types", ["order.created"], ["order.created"], True),
    ("types", ["not a name"], ["not a name"], False),
    ("types", [f"t.{i}" for i in range(500)], [f"t.{i}" for i in range(500)], True),
    ("types", [f"t.{i}" for i in range(501)], [f"t.{i}" for i in range(501)], False),
    ("rate", 1, "1", True),
    ("rate", 0, "0", False),
    ("rate", replays.MAX_RATE, str(replays.MAX_RATE), True),
    ("rate", replays.MAX_RATE + 1, str(replays.MAX_RATE + 1), False),
    *[("statuses", [s], [s], True) for s in replays.STATUSES],
    ("statuses", ["pending"], ["pending"], False),
    ("since", "2026-01-01T00:00:00Z", "2026-01-01T00:00", True),
    ("since", "0001-01-01T00:00:00Z", "0001-01-01T00:00", False),  # outside 1970..9999
    ("endpoint", "ep_1", "ep_1", True),
    ("endpoint", "x" * 201, "x" * 201, False),
]


def _api_takes_replay(field: str, value: Any) -> bool:
    try:
        body = ReplaysIn.model_validate_json(orjson.dumps({field: value}), strict=True)
        replays.ReplayFilter(
            endpoint=body.endpoint,
            types=body.types,
            statuses=body.statuses,
            since=body.since,
            until=body.until,
            missed=body.missed,
        ).check()
    except (ValidationError, InvalidInput):
        return False
    return True


def _form_takes_replay(field: str, value: str | list[str]) -> bool:
    values = value if isinstance(value, list) else [value]
    posted: list[tuple[str, str | UploadFile]] = [(field, v) for v in values]
    if field != "statuses":
        posted.append(("statuses", "failed"))
    entered = ReplayForm.read(FormData(posted), posted=True)
    wanted = entered.to_filter(default_rate=50)
    if wanted is None:
        assert set(entered.errors) == {field}, entered.errors
        return False
    try:
        wanted[0].check()
    except InvalidInput:
        return False
    return True


@pytest.mark.parametrize(("field", "as_json", "as_form", "accepted"), REPLAY_CASES)
def test_the_replay_form_and_the_api_agree(
    field: str, as_json: Any, as_form: str | list[str], accepted: bool
) -> None:
    assert _api_takes_replay(field, as_json) is accepted
    assert _form_takes_replay(field, as_form) is accepted


# -- delivery filters: (query parameter of the API, of the dashboard, value, accepted) ----

FILTER_CASES: list[tuple[str, str, str, bool]] = [
    *[("http_status", "http", c, True) for c in deliveries.STATUS_CLASSES],
    ("http_status", "http", "6xx", False),
    *[("status", "status", s, True) for s in deliveries.STATUSES],
    ("status", "status", "lost", False),
    ("endpoint", "endpoint", "ep_1", True),
    ("endpoint", "endpoint", "x" * 201, False),
]


@pytest.mark.parametrize(("api_name", "form_name", "value", "accepted"), FILTER_CASES)
def test_the_delivery_filters_and_the_api_agree(
    api_name: str, form_name: str, value: str, accepted: bool
) -> None:
    try:
        DeliveriesQuery.model_validate({api_name: value})
        api_accepts = True
    except ValidationError:
        api_accepts = False
    filters = read_filters(QueryParams({form_name: value}))
    assert api_accepts is accepted
    assert (form_name not in filters.errors) is accepted, filters.errors
