"""JSON Schema (draft 2020-12) for event types: checking schema documents, validating data.

Pure functions and a bounded in-process cache of compiled validators; no I/O. Problems come
back as ``(path, message)`` pairs so callers can prefix the locations their API uses.

Choices worth knowing:

- Every schema is draft 2020-12. A ``$schema`` naming another draft is refused rather than
  read under different rules (``items`` changed meaning between drafts).
- ``$ref`` never leaves the document: nothing is fetched over the network (jsonschema's
  default would fetch remote URIs, which would let a tenant make the server send requests),
  and a reference that does not resolve within the document or to a JSON Schema meta-schema
  is refused when the schema is registered, not discovered at ingest.
- ``format`` is an annotation, as draft 2020-12 says by default: ``"format": "email"`` is
  not asserted. Use ``pattern`` for what must hold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema_specifications import REGISTRY as META_SCHEMAS
from referencing import Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:  # referencing documents Resolver but exports it only from its _core
    from referencing._core import Resolver

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Deepest nesting of objects and arrays a schema may have. Real schemas stay far below it;
#: it keeps the recursive checker well inside Python's recursion limit.
MAX_SCHEMA_DEPTH = 64
#: Longest message kept from jsonschema, whose messages quote the offending value.
MAX_MESSAGE = 300

Path = list[str | int]
Problem = tuple[Path, str]

# The official meta-schemas only, and no retrieval: any other URI fails to resolve.
_REGISTRY = META_SCHEMAS
_META = Draft202012Validator(
    Draft202012Validator.META_SCHEMA,
    format_checker=Draft202012Validator.FORMAT_CHECKER,  # refuses patterns that do not compile
    registry=_REGISTRY,
)


def schema_problems(schema: Any) -> list[Problem]:
    """Everything wrong with ``schema`` as a draft 2020-12 schema; empty when it is usable."""
    if not isinstance(schema, dict):
        return [([], "a schema is a JSON object")]
    if _deeper_than(schema, MAX_SCHEMA_DEPTH):
        return [([], f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")]
    dialect = schema.get("$schema")
    if dialect is not None and str(dialect).rstrip("#") != DIALECT:
        return [(["$schema"], f"schemas are JSON Schema draft 2020-12 ({DIALECT})")]
    problems = [(list(e.absolute_path), _message(e)) for e in _META.iter_errors(schema)]
    if problems:
        return sorted(problems, key=_order)
    return _unresolvable_refs(schema)


def data_problems(validator: Draft202012Validator, data: Any) -> list[Problem]:
    """Every place where ``data`` fails ``validator``'s schema, in document order."""
    try:
        problems = [(list(e.absolute_path), _message(e)) for e in validator.iter_errors(data)]
    except RecursionError:
        # a recursive schema follows the data down; data this deep is refused, not a crash
        return [([], "the data is nested too deeply to validate")]
    except Unresolvable as exc:  # refused at registration; kept for schemas stored before
        return [([], f"the schema's reference {exc.ref!r} does not resolve")]
    return sorted(problems, key=_order)


def compile_schema(schema: Any) -> Draft202012Validator:
    """A validator for a schema that :func:`schema_problems` found nothing wrong with."""
    return Draft202012Validator(schema, registry=_REGISTRY)


class ValidatorCache:
    """Compiled validators by key, least recently used dropped first past ``size``.

    Keys must name immutable schemas, e.g. ``(event_type_id, version)``: an entry is never
    refreshed.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Draft202012Validator] = OrderedDict()

    def get(self, key: Hashable) -> Draft202012Validator | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, validator: Draft202012Validator) -> None:
        self._entries[key] = validator
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


def _unresolvable_refs(schema: dict[str, Any]) -> list[Problem]:
    root = DRAFT202012.create_resource(schema)
    problems: list[Problem] = []
    for ref in _refs(root, _REGISTRY.resolver_with_root(root)):
        problems.append(
            (
                [],
                f"$ref {ref!r} does not resolve within the schema; remote schemas are not "
                "fetched, so put shared definitions under $defs",
            )
        )
    return problems


def _refs(resource: Resource[Any], resolver: Resolver[Any]) -> Iterator[str]:
    """The ``$ref`` and ``$dynamicRef`` values under ``resource`` that do not resolve."""
    contents = resource.contents
    if isinstance(contents, dict):
        for keyword in ("$ref", "$dynamicRef"):
            ref = contents.get(keyword)
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    yield ref
    for sub in resource.subresources():
        yield from _refs(sub, resolver.in_subresource(sub))


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return False


def _message(error: ValidationError) -> str:
    text = error.message
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _order(problem: Problem) -> list[tuple[int, int, str]]:
    # paths mix keys and indexes: indexes sort as numbers, before keys
    return [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in problem[0]]
