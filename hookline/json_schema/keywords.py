"""The keyword functions hookline replaces in jsonschema's draft 2020-12 validator.

Each keeps jsonschema's meaning and messages, and changes how the work is done:

- ``pattern``, ``patternProperties``, ``additionalProperties`` and ``unevaluatedProperties``
  match with RE2 (:mod:`hookline.json_schema.patterns`) instead of Python's backtracking ``re``, and
  pay for each search before it runs;
- ``uniqueItems`` hashes (O(n)) instead of comparing every pair (O(n^2) for unsortable
  items), and its message names the two equal items instead of quoting the whole array;
- ``unevaluatedItems`` and ``unevaluatedProperties`` collect evaluated indexes and keys in
  sets, not lists searched once per item, and treat boolean subschemas without descending;
- every walk pays to the budget (:mod:`hookline.json_schema.budget`) for what it loops over.

Used through ``jsonschema.validators.extend``; nothing is subclassed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jsonschema.exceptions import ValidationError

from hookline.json_schema.budget import (
    Keyword,
    current,
    first_duplicate,
    spend_descents,
    spend_reference,
)
from hookline.json_schema.patterns import Pattern, PatternError

Compile = Callable[[str], Pattern]
Errors = Iterator[ValidationError]


def replaced(compile_pattern: Compile) -> dict[str, Keyword]:
    """The replacement keyword functions, matching patterns compiled by ``compile_pattern``."""

    def matches(pattern: str, text: str) -> bool:
        compiled = compile_pattern(pattern)
        data = text.encode("utf-8", "surrogatepass")
        budget = current()
        if budget is not None:
            paid = budget.dfa_states.get(pattern, 0)
            units, budget.dfa_states[pattern] = compiled.units(len(data), paid)
            budget.spend(budget.rates.search + units // budget.rates.regex_units)
        return compiled.search(data)

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Errors:
        if validator.is_type(instance, "string") and not matches(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def patternProperties(validator: Any, value: Any, instance: Any, schema: Any) -> Errors:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in value.items():
            for key, item in instance.items():
                if matches(patrn, key):
                    spend_descents(1)
                    yield from validator.descend(item, subschema, path=key, schema_path=patrn)

    def extras(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
        """Keys neither ``properties`` nor ``patternProperties`` cover, in instance order."""
        spend_descents(0, len(instance))
        properties = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        return [
            key
            for key in instance
            if key not in properties and not any(matches(p, key) for p in patterns)
        ]

    def additionalProperties(validator: Any, value: Any, instance: Any, schema: Any) -> Errors:
        if not validator.is_type(instance, "object"):
            return
        found = extras(instance, schema)
        if validator.is_type(value, "object"):
            for extra in found:
                spend_descents(1)
                yield from validator.descend(instance[extra], value, path=extra)
        elif not value and found:
            if "patternProperties" in schema:
                verb = "does" if len(found) == 1 else "do"
                joined = ", ".join(repr(each) for each in sorted(found))
                patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
                yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
            else:
                listed = ", ".join(repr(each) for each in sorted(found))
                verb = "was" if len(found) == 1 else "were"
                yield ValidationError(
                    f"Additional properties are not allowed ({listed} {verb} unexpected)"
                )

    def evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
        if not isinstance(schema, dict):
            return set()
        spend_descents(0, 2 * len(instance))
        keys: set[str] = set()
        for inner, contents in _referenced(validator, schema):
            keys |= evaluated_keys(inner, instance, contents)
        properties = schema.get("properties")
        if isinstance(properties, dict):
            keys.update(properties.keys() & instance.keys())
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            if (subschema := schema.get(keyword)) is not None:
                keys.update(k for k, v in instance.items() if _valid(validator, v, subschema))
        for patrn in schema.get("patternProperties", {}):
            keys.update(key for key in instance if matches(patrn, key))
        for name, subschema in schema.get("dependentSchemas", {}).items():
            if name in instance:
                keys |= evaluated_keys(validator, instance, subschema)
        for keyword in ("allOf", "oneOf", "anyOf"):
            for subschema in schema.get(keyword, []):
                if _valid(validator, instance, subschema):
                    keys |= evaluated_keys(validator, instance, subschema)
        if "if" in schema:
            if _valid(validator, instance, schema["if"]):
                keys |= evaluated_keys(validator, instance, schema["if"])
                if "then" in schema:
                    keys |= evaluated_keys(validator, instance, schema["then"])
            elif "else" in schema:
                keys |= evaluated_keys(validator, instance, schema["else"])
        return keys

    def unevaluatedProperties(validator: Any, value: Any, instance: Any, schema: Any) -> Errors:
        if not validator.is_type(instance, "object"):
            return
        evaluated = evaluated_keys(validator, instance, schema)
        unevaluated = [
            key
            for key in instance
            if key not in evaluated
            and not _valid(validator, instance[key], value, path=key, schema_path=key)
        ]
        if unevaluated:
            if value is False:
                listed = ", ".join(repr(each) for each in sorted(unevaluated))
                verb = "was" if len(unevaluated) == 1 else "were"
                message = f"Unevaluated properties are not allowed ({listed} {verb} unexpected)"
            else:
                listed = ", ".join(repr(each) for each in unevaluated)
                verb = "was" if len(unevaluated) == 1 else "were"
                message = (
                    "Unevaluated properties are not valid under the given schema "
                    f"({listed} {verb} unevaluated and invalid)"
                )
            yield ValidationError(message)

    return {
        "pattern": pattern,
        "patternProperties": patternProperties,
        "additionalProperties": additionalProperties,
        "unevaluatedProperties": unevaluatedProperties,
        "unevaluatedItems": unevaluatedItems,
        "uniqueItems": uniqueItems,
    }


def uniqueItems(validator: Any, value: Any, instance: Any, schema: Any) -> Errors:
    if value and validator.is_type(instance, "array"):
        duplicate = first_duplicate(instance)
        if duplicate is not None:
            later, earlier = duplicate
            yield ValidationError(f"has non-unique elements: item {later} equals item {earlier}")


def unevaluatedItems(validator: Any, value: Any, instance: Any, schema: Any) -> Errors:
    if not validator.is_type(instance, "array"):
        return
    evaluated = _evaluated_indexes(validator, instance, schema)
    unevaluated = [item for index, item in enumerate(instance) if index not in evaluated]
    if unevaluated:
        listed = ", ".join(repr(each) for each in unevaluated)
        verb = "was" if len(unevaluated) == 1 else "were"
        yield ValidationError(f"Unevaluated items are not allowed ({listed} {verb} unexpected)")


def _evaluated_indexes(validator: Any, instance: list[Any], schema: Any) -> set[int]:
    if not isinstance(schema, dict):
        return set()
    spend_descents(0, len(instance))
    if "items" in schema:
        return set(range(len(instance)))
    indexes: set[int] = set()
    for inner, contents in _referenced(validator, schema):
        indexes |= _evaluated_indexes(inner, instance, contents)
    if "prefixItems" in schema:
        indexes.update(range(min(len(schema["prefixItems"]), len(instance))))
    if "if" in schema:
        if _valid(validator, instance, schema["if"]):
            indexes |= _evaluated_indexes(validator, instance, schema["if"])
            if "then" in schema:
                indexes |= _evaluated_indexes(validator, instance, schema["then"])
        elif "else" in schema:
            indexes |= _evaluated_indexes(validator, instance, schema["else"])
    for keyword in ("contains", "unevaluatedItems"):
        if keyword in schema:
            subschema = schema[keyword]
            indexes.update(
                i for i, item in enumerate(instance) if _valid(validator, item, subschema)
            )
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _valid(validator, instance, subschema):
                indexes |= _evaluated_indexes(validator, instance, subschema)
    return indexes


def _valid(validator: Any, instance: Any, subschema: Any, **where: Any) -> bool:
    """Whether ``instance`` is valid under ``subschema``; booleans answer without descending
    (jsonschema's ``False`` error quotes the whole instance, paid for by no keyword)."""
    if subschema is True or subschema is False:
        return subschema
    spend_descents(1)
    return next(validator.descend(instance, subschema, **where), None) is None


def pattern_problem(compile_pattern: Compile, pattern: str, max_program: int) -> str | None:
    """Why ``pattern`` cannot be registered, or None."""
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:
        if "not supported" in str(exc):
            return (
                f"{pattern!r} cannot be used: {exc}; patterns run on RE2, in time linear in "
                "the text, which has no lookarounds or backreferences"
            )
        return f"{pattern!r} is not a valid pattern: {exc}"
    if compiled.program > max_program:
        return (
            f"{pattern!r} is too complex: RE2 compiles it to {compiled.program} instructions, "
            f"the limit is {max_program}; bound lengths with minLength/maxLength rather than "
            "{m,n} over big classes"
        )
    return None


def patterns_in(value: Any) -> set[str]:
    """Every ``pattern`` value and ``patternProperties`` key anywhere in ``value`` (also
    outside schema positions: a ``$ref`` can point anywhere in the document)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            if isinstance(node.get("patternProperties"), dict):
                found.update(k for k in node["patternProperties"] if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _referenced(validator: Any, schema: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """The validator and schema each ``$ref`` / ``$dynamicRef`` of ``schema`` leads to,
    each lookup paid for."""
    for ref_keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_keyword)
        if ref is not None:
            spend_reference()
            resolved = validator._resolver.lookup(ref)
            yield (
                validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                (resolved.contents),
            )
