"""JSON Schema (draft 2020-12) for event types: checking schema documents, validating data.

Pure functions and bounded in-process caches (compiled validators, compiled patterns); no
I/O. Problems come back as ``(path, message)`` pairs so callers can prefix the locations
their API uses. Every limit of this feature is a constant of this module.

Choices worth knowing:

- Every schema is draft 2020-12. A ``$schema`` naming another draft is refused rather than
  read under different rules (``items`` changed meaning between drafts).
- ``$ref`` never leaves the document: nothing is fetched over the network (jsonschema's
  default would fetch remote URIs, which would let a tenant make the server send requests),
  and a reference that does not resolve within the document or to a JSON Schema meta-schema
  is refused when the schema is registered, not discovered at ingest.
- ``format`` is an annotation, as draft 2020-12 says by default: ``"format": "email"`` is
  not asserted. Use ``pattern`` for what must hold.

Nothing a tenant writes may run unbounded:

- Patterns (``pattern``, ``patternProperties``, and the ``regex`` check of patterns at
  registration) run on RE2 (:mod:`hookline.json_schema.patterns`), which never backtracks:
  ``^(a+)+$`` takes time linear in the text. RE2 has no lookarounds (``(?=``, ``(?!``,
  ``(?<=``, ``(?<!``) and no backreferences (``\\1``, ``\\k<name>``); a pattern using them is
  refused at registration, with its path and why. Where JSON Schema's ECMA-262 dialect and
  RE2 differ: ``\\d`` and ``\\w`` are ASCII in both (Python's ``re``, used before, matched any
  Unicode digit or letter); ``\\s`` is ASCII whitespace in RE2 but also matches U+00A0,
  U+FEFF, U+2028 etc. in ECMA-262; ``.`` excludes only ``\\n`` in RE2 (ECMA-262 also ``\\r``,
  U+2028, U+2029); ``$`` matches only at the very end in both (Python's also before a final
  newline); ``\\uXXXX`` and ``\\u{...}`` are translated to RE2's ``\\x{...}``; ``\\p{L}``,
  ``\\p{Greek}`` work but long names (``\\p{Letter}``, ``\\p{Script=Greek}``) do not; ``\\cX``
  and ``[^]`` are not RE2. Patterns may also use RE2's own ``(?i)``.
- Every validation has a budget of steps (:mod:`hookline.json_schema.budget`): each keyword
  evaluation, each value compared, each character of a message, each byte a pattern scans
  costs steps, counted, not timed, so an event is accepted or refused the same way under any
  load. Past the budget the event is refused as too costly to validate. ``uniqueItems`` is
  checked by hashing, O(n) (:mod:`hookline.json_schema.keywords`).
- Schemas and examples are capped in size and shape when registered, and big ones are
  checked off the event loop (:mod:`hookline.event_types` decides where work runs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, cast

import orjson
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema_specifications import REGISTRY as META_SCHEMAS
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from hookline.json_schema.budget import Budget, Rates, TooCostly, TooDeep, counted, spending
from hookline.json_schema.dialects import dialects, validated_copy, without_dialect
from hookline.json_schema.keywords import pattern_problem, patterns_in, replaced
from hookline.json_schema.patterns import PatternError, compiled

if TYPE_CHECKING:  # referencing documents Resolver but exports it only from its _core
    from referencing._core import Resolver

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Deepest nesting of objects and arrays a schema may have. Real schemas stay far below it;
#: it keeps the recursive checker well inside Python's recursion limit.
MAX_SCHEMA_DEPTH = 64
#: Longest message kept from jsonschema, whose messages quote the offending value.
MAX_MESSAGE = 300
#: Problems listed for one event (or example); past it, one line says how many more.
MAX_PROBLEMS = 100

# -- caps at registration --------------------------------------------------------------------
# Checking a schema against the meta-schema costs ~0.35 to 0.5 ms per subschema in it (each
# is checked against the whole meta-schema): 1,000 take up to ~0.5 s, in a worker thread.
# The 929 KB probe (5.2 s on the event loop before) is refused by its size in ~2 ms.
#: A schema's size as compact JSON.
MAX_SCHEMA_BYTES = 64 * 1024
#: Objects and booleans (subschemas, and any other) in a schema.
MAX_SCHEMA_SUBSCHEMAS = 1_000
#: Object members in a schema (keywords and the names under properties, $defs, ...).
MAX_SCHEMA_KEYWORDS = 4_096
#: An example's size as compact JSON.
MAX_EXAMPLE_BYTES = 64 * 1024

# -- the step budget of one validation -------------------------------------------------------
# A step is priced at roughly one keyword evaluation; descents, $ref lookups, errors, values
# compared and pattern searches cost several (RATES). Measured on this machine (2 vCPUs, a
# slow one: a bare Python loop runs at ~180 ns an iteration), every kind of work costs
# 0.3 to 1.8 us a step: recursive anyOf/oneOf over $ref and $dynamicRef, quoting errors,
# enum and const scans, uniqueItems, NFA-bound patterns, unevaluated*, and ordinary
# validation itself (1.66 us a step). Cheap for the cheap kinds, never much dearer than
# what it prices.
#: Steps one validation may take: at 1.0 to 1.6 us a step for the slowest kinds here, a
#: validation stops within ~0.2 to 0.35 s. Ordinary data costs ~1 us a step: 1 MB of
#: orders (360 of them, each with a customer, an address, 3 lines and a note) takes
#: ~122,000 steps and ~120 ms. Very dense data costs more per byte: 1 MB of 4,500 tiny
#: records checked field by field takes ~495,000 steps (0.7 s even in plain jsonschema
#: here) and is refused; such records belong in a batch, whose events each have a budget.
MAX_STEPS = 200_000
#: Steps the events of one request may take on the event loop, together, before the rest
#: go to a worker thread: ~2 ms. A typical small event takes 50 to 300.
INLINE_STEPS = 1_000
#: Keyword evaluations open at once, one inside the other (~4 Python frames each, so ~600
#: frames: inside Python's limit of 1,000 from the event loop's stack too). Ordinary data
#: nests 2 or 3 a level; request bodies nest at most 32 levels (api.http.MAX_DEPTH).
MAX_NESTING = 150
#: Steps between hand-overs of the GIL to the event loop by a validation in a worker thread
#: (~1 ms); without them the loop waits up to sys.getswitchinterval() (5 ms) each time it
#: wakes up while a worker runs.
PAUSE_STEPS = 500
#: How work converts to steps; measured alongside MAX_STEPS.
RATES = Rates(
    descend=6,
    reference=25,
    error=20,
    message_chars=100,
    loop=8,
    nodes=1,
    hash_nodes=1,
    search=4,
    regex_units=100,
)
#: Compiled patterns kept (each up to patterns.MAX_MEM of RE2 memory when in use).
PATTERN_CACHE = 256
#: RE2 instructions one pattern may compile to. Compiling costs ~1 us an instruction here
#: (`[\\p{L}\\p{N}_-]{1,64}`: 86,000 instructions, 76 ms).
MAX_PATTERN_PROGRAM = 20_000
#: The effort (~us) of compiling and analysing all of a schema's patterns: RE2's
#: instructions plus 20 for each position hookline.json_schema.pattern_cost analyses (<= 2 ms a
#: pattern). Registration stops compiling at the first pattern past it.
MAX_SCHEMA_PATTERN_EFFORT = 50_000

# -- worker threads --------------------------------------------------------------------------
#: Validations running in worker threads at once, per process.
VALIDATION_THREADS = 4
#: ... of which one tenant may use at most this many.
VALIDATION_THREADS_PER_TENANT = 1

Path = list[str | int]
Problem = tuple[Path, str]

_compile_pattern = compiled(PATTERN_CACHE)
# Every keyword pays its steps; patterns run on RE2. jsonschema switches to the class
# registered for a subschema's `$schema` (losing all of this), so the validated copy of a
# schema has no `$schema` anywhere (registration refuses them below the root), and
# references reach only the draft 2020-12 meta-schemas, copied without theirs.
_extend = cast(Callable[..., Callable[..., Validator]], validators.extend)  # untyped in its stubs
_Validator = _extend(
    Draft202012Validator,
    validators={
        name: counted(name, keyword)
        for name, keyword in {
            **Draft202012Validator.VALIDATORS,
            **replaced(_compile_pattern),
        }.items()
    },
)


_REGISTRY: Registry[Any] = Registry().with_resources(
    (uri, DRAFT202012.create_resource(without_dialect(META_SCHEMAS[uri].contents)))
    for uri in META_SCHEMAS
    if uri.startswith("https://json-schema.org/draft/2020-12/")
)
# The meta-schema check (the official meta-schemas, no retrieval): `format: regex`, which
# the meta-schema puts on patterns, means "RE2 can run it".
_FORMATS = FormatChecker()
_FORMATS.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
_FORMATS.checks("regex", raises=PatternError)(
    lambda instance: (
        not isinstance(instance, str)
        or pattern_problem(_compile_pattern, instance, MAX_PATTERN_PROGRAM) is None
    )
)
_META = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=_FORMATS, registry=META_SCHEMAS
)
TOO_DEEP = "the data is nested too deeply to validate (or the schema's references loop)"
TOO_COSTLY = (
    f"the event is too costly to validate against its schema (more than {MAX_STEPS} checks); "
    "simplify the schema or the event"
)


def schema_problems(schema: Any) -> list[Problem]:
    """Everything wrong with ``schema`` as a draft 2020-12 schema; empty when it is usable."""
    if not isinstance(schema, dict):
        return [([], "a schema is a JSON object")]
    size = schema_bytes(schema)
    if size < 0:
        return [([], f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")]
    if size > MAX_SCHEMA_BYTES:
        return [([], f"the schema is {size} bytes as JSON; the limit is {MAX_SCHEMA_BYTES}")]
    depth, subschemas, keywords = _shape(schema, MAX_SCHEMA_DEPTH)
    if depth > MAX_SCHEMA_DEPTH:
        return [([], f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")]
    if subschemas > MAX_SCHEMA_SUBSCHEMAS:
        return [
            (
                [],
                f"the schema has {subschemas} objects and booleans (subschemas); the limit "
                f"is {MAX_SCHEMA_SUBSCHEMAS}",
            )
        ]
    if keywords > MAX_SCHEMA_KEYWORDS:
        return [
            (
                [],
                f"the schema has {keywords} keywords and property names; the limit is "
                f"{MAX_SCHEMA_KEYWORDS}",
            )
        ]
    dialect = schema.get("$schema")
    if dialect is not None and str(dialect).rstrip("#") != DIALECT:
        return [(["$schema"], f"schemas are JSON Schema draft 2020-12 ({DIALECT})")]
    nested = [
        (path, "$schema may appear only at the root: every schema is draft 2020-12")
        for path in dialects(schema)
        if path
    ]
    if nested:
        return _capped(nested)
    effort = 0  # compiled before the meta-schema check needs them, stopping at the cap
    for pattern in sorted(patterns_in(schema)):
        effort += _effort(pattern)
        if effort > MAX_SCHEMA_PATTERN_EFFORT:
            return [([], "the schema's patterns are too many or too complex together")]
    problems = [(list(e.absolute_path), _meta_message(e)) for e in _META.iter_errors(schema)]
    if problems:
        return _capped(sorted(problems, key=_order))
    return _unresolvable_refs(schema)


def _effort(pattern: str) -> int:
    """The effort of compiling ``pattern`` (patterns.Pattern.effort); MAX_PATTERN_PROGRAM
    when RE2 stopped compiling it for its size, 0 for other faults (syntax: found at once,
    and reported with its path by the meta-schema check)."""
    try:  # a pattern too complex is reported with its path by the meta-schema check
        return min(_compile_pattern(pattern).effort, MAX_PATTERN_PROGRAM)
    except PatternError as exc:
        return MAX_PATTERN_PROGRAM if "too big" in str(exc) else 0


def example_problems(example: Any) -> list[Problem]:
    """What makes ``example`` too big to register (its fit to the schema is checked by
    :func:`data_problems`)."""
    size = schema_bytes(example)
    if size < 0:
        return [([], "the example is nested too deeply")]
    if size > MAX_EXAMPLE_BYTES:
        return [([], f"the example is {size} bytes as JSON; the limit is {MAX_EXAMPLE_BYTES}")]
    return []


def data_problems(
    validator: Validator, data: Any, steps: int = MAX_STEPS, *, in_worker: bool = False
) -> list[Problem]:
    """Every place where ``data`` fails ``validator``'s schema, in document order, at most
    MAX_PROBLEMS of them; one problem when validating would take more than ``steps``.
    ``in_worker``: running in a thread beside the event loop, hand it the GIL every
    PAUSE_STEPS."""
    budget = Budget(steps, RATES, MAX_NESTING, PAUSE_STEPS if in_worker else 0)
    try:
        return _validate(validator, data, budget)
    except TooCostly:
        return [([], TOO_COSTLY)]
    except (TooDeep, RecursionError):
        # a recursive schema follows the data down; data this deep is refused, not a crash
        return [([], TOO_DEEP)]


def quick_data_problems(
    validator: Validator, data: Any, steps: int
) -> tuple[list[Problem] | None, int]:
    """:func:`data_problems` within ``steps`` (at most MAX_STEPS), and the steps it took;
    None instead of problems when that was not enough to decide (run :func:`data_problems`,
    off the event loop). The answer, when there is one, is :func:`data_problems`'s."""
    budget = Budget(min(steps, MAX_STEPS), RATES, MAX_NESTING)
    try:
        return _validate(validator, data, budget), budget.spent
    except TooDeep:
        return [([], TOO_DEEP)], budget.spent
    except (TooCostly, RecursionError):
        return None, budget.spent


def _validate(validator: Validator, data: Any, budget: Budget) -> list[Problem]:
    try:
        with spending(budget):
            problems = [(list(e.absolute_path), _message(e)) for e in validator.iter_errors(data)]
    except Unresolvable as exc:  # refused at registration; kept for schemas stored before
        return [([], f"the schema's reference {exc.ref!r} does not resolve")]
    except PatternError as exc:  # likewise: RE2 cannot run a pattern stored before it
        return [([], f"the schema's pattern {exc.pattern!r} cannot run: {exc}")]
    return _capped(sorted(problems, key=_order))


def compile_schema(schema: Any) -> Validator:
    """A validator for a schema that :func:`schema_problems` found nothing wrong with. Its
    patterns are compiled now (up to MAX_SCHEMA_PATTERN_EFFORT, ~50 ms and one pattern):
    call it off the event loop."""
    for pattern in patterns_in(schema):
        _effort(pattern)
    root = DRAFT202012.create_resource(validated_copy(schema))
    # the resolver given, not a registry: jsonschema would add every draft's meta-schema
    validator: Validator = _Validator(root.contents, _resolver=_REGISTRY.resolver_with_root(root))
    return validator


def schema_bytes(value: Any) -> int:
    """The size of ``value`` as compact JSON; -1 when it is nested too deeply to encode
    (orjson stops at 254 levels)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return -1


class ValidatorCache:
    """Compiled validators by key, least recently used dropped first past ``size``.

    Keys must name immutable schemas, e.g. ``(event_type_id, version)``: an entry is never
    refreshed.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Validator] = OrderedDict()

    def get(self, key: Hashable) -> Validator | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, validator: Validator) -> None:
        self._entries[key] = validator
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = len(problems) - MAX_PROBLEMS
    return [*problems[:MAX_PROBLEMS], ([], f"and {more} more problems, not listed")]


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


def _shape(value: Any, limit: int) -> tuple[int, int, int]:
    """The nesting depth of ``value`` (walking no deeper than ``limit + 1``), how many
    objects and booleans it has and how many object members."""
    deepest, subschemas, members = 0, 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            break
        if isinstance(node, dict):
            subschemas += 1
            members += len(node)
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif node is True or node is False:
            subschemas += 1
    return deepest, subschemas, members


def _meta_message(error: ValidationError) -> str:
    regex = error.validator == "format" and error.validator_value == "regex"
    if regex and isinstance(error.instance, str):
        found = pattern_problem(_compile_pattern, error.instance, MAX_PATTERN_PROGRAM)
        return found or _message(error)
    return _message(error)


def _message(error: ValidationError) -> str:
    text = error.message
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _order(problem: Problem) -> list[tuple[int, int, str]]:
    # paths mix keys and indexes: indexes sort as numbers, before keys
    return [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in problem[0]]
