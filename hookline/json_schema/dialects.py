"""The copy of a tenant's schema that hookline validates with.

Two rewrites, neither changing what the schema accepts:

- No ``$schema`` anywhere. jsonschema picks the validator class for every subschema it
  descends into from the subschema's ``$schema``, so one naming draft 7 would be validated
  by jsonschema's own draft 7 class: Python's backtracking ``re``, no step budget.
  Registration refuses ``$schema`` below the root (:func:`dialects` finds them); the copy
  drops them everywhere, also for schemas stored before, and the root's (2020-12 anyway).
- ``false`` where only pass or fail matters (``anyOf``, ``oneOf``, ``not``, ``if``,
  ``contains``) becomes ``{"not": {}}``. jsonschema's error for ``false`` quotes the whole
  instance and is made outside any keyword function, so nothing would pay for it; the
  ``not`` keyword fails the same way and pays (:mod:`hookline.json_schema.budget`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Path = list[str | int]


def validated_copy(schema: Any) -> Any:
    """``schema`` rewritten for validation; ``schema`` itself is not changed."""
    return _falses_made_paid(without_dialect(schema))


def without_dialect(value: Any) -> Any:
    """``value`` without any ``$schema`` key, at any depth."""
    if isinstance(value, dict):
        return {k: without_dialect(v) for k, v in value.items() if k != "$schema"}
    if isinstance(value, list):
        return [without_dialect(v) for v in value]
    return value


def dialects(value: Any, path: Path | None = None) -> Iterator[Path]:
    """Where ``value`` has a ``$schema`` key (the path of the object holding it)."""
    path = [] if path is None else path
    if isinstance(value, dict):
        if "$schema" in value:
            yield path
        for key, child in value.items():
            yield from dialects(child, [*path, key])
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from dialects(child, [*path, index])


# Keywords whose subschemas hold schemas; those in _CONSUMED are evaluated only for whether
# they pass, so jsonschema's error for a `false` there (which quotes the whole instance) is
# made and dropped inside another keyword: `{"not": {}}` fails the same way, and its error
# is made by a keyword, which pays for it.
_ONE = ("additionalProperties", "unevaluatedProperties", "unevaluatedItems", "items",
        "contains", "propertyNames", "if", "then", "else", "not", "contentSchema")  # fmt: skip
_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_CONSUMED = frozenset({"anyOf", "oneOf", "not", "if", "contains"})


def _falses_made_paid(schema: Any, consumed: bool = False) -> Any:
    if schema is False and consumed:
        return {"not": {}}
    if not isinstance(schema, dict):
        return schema
    copy = dict(schema)
    for keyword in _ONE:
        if keyword in copy:
            copy[keyword] = _falses_made_paid(copy[keyword], keyword in _CONSUMED)
    for keyword in _LIST:
        if isinstance(copy.get(keyword), list):
            copy[keyword] = [_falses_made_paid(s, keyword in _CONSUMED) for s in copy[keyword]]
    for keyword in _MAP:
        if isinstance(copy.get(keyword), dict):
            copy[keyword] = {k: _falses_made_paid(s) for k, s in copy[keyword].items()}
    return copy
