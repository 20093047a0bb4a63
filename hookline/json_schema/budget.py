"""The step budget of one validation: every keyword evaluation is paid for before it runs.

A :class:`Budget` is set for the duration of one validation (a context variable, so each
thread or task has its own) and every keyword function of the validator is wrapped by
:func:`counted`: it pays one step, plus its own size-bound work (the descents into
subschemas it will make, ``required`` looping over its list, ``enum`` comparing with each
value, a ``$ref`` lookup), plus, for each error it makes, the error and the length of its
message (``{instance!r}`` costs the size of the instance). When the budget runs out,
:class:`TooCostly` unwinds the validation; past ``max_depth`` keyword evaluations open one
inside another, :class:`TooDeep` does. Costs depend only on the schema and the data, never
on time or on what is cached, so the same event gets the same answer under any load.

In a worker thread a validation also hands the GIL to the event loop every
``pause_every`` steps. Without a budget in the context the wrappers pay nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import ValidationError

Keyword = Callable[[Any, Any, Any, Any], Iterable[ValidationError] | None]
_PAID = "_hookline_paid"


class TooCostly(Exception):
    """The validation needed more steps than its budget."""


class TooDeep(Exception):
    """The validation nested keywords deeper than its budget allows (recursive references
    following deep data, or references in a cycle)."""


@dataclass(frozen=True, slots=True)
class Rates:
    """How work converts to steps (measured; see :mod:`hookline.json_schema`)."""

    descend: int  # steps to descend into a subschema
    reference: int  # steps to look up a $ref (the descent included)
    error: int  # steps to make an error, before its message
    message_chars: int  # characters of an error message per step
    loop: int  # list entries or object members walked per step
    nodes: int  # steps per JSON value compared (enum, const)
    hash_nodes: int  # steps per JSON value hashed (uniqueItems)
    search: int  # steps to start a pattern search
    regex_units: int  # regex work units (see hookline.json_schema.patterns) per step


@dataclass(slots=True)
class Budget:
    limit: int
    rates: Rates
    max_depth: int = 150  # keyword evaluations open at once (each ~4 Python frames)
    pause_every: int = 0  # steps between handing the GIL over (0: never)
    spent: int = 0
    depth: int = 0
    next_pause: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # id(schema value) -> nodes
    dfa_states: dict[str, int] = field(default_factory=dict)  # pattern -> states paid for

    def spend(self, steps: int) -> None:
        self.spent += steps
        if self.spent > self.limit:
            raise TooCostly(self.limit)
        if self.pause_every and self.spent >= self.next_pause:
            # in a worker thread: let the event loop have the GIL now rather than at the
            # next forced switch (up to sys.getswitchinterval(), 5 ms, away)
            self.next_pause = self.spent + self.pause_every
            time.sleep(0)

    def nodes_of(self, value: Any) -> int:
        """Steps to compare against ``value`` (a schema value: alive all validation long)."""
        key = id(value)
        found = self.sizes.get(key)
        if found is None:
            found = self.sizes[key] = 1 + nodes(value) * self.rates.nodes
        return found


_CURRENT: ContextVar[Budget | None] = ContextVar("hookline_schema_budget", default=None)


@contextmanager
def spending(budget: Budget) -> Iterator[Budget]:
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current() -> Budget | None:
    return _CURRENT.get()


def spend_descents(count: int, walked: int = 0) -> None:
    """Pay for ``count`` descents into subschemas and ``walked`` members looped over."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.spend(1 + count * budget.rates.descend + walked // budget.rates.loop)


def spend_reference() -> None:
    """Pay for looking up a reference and descending into it."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.spend(budget.rates.reference)


def nodes(value: Any) -> int:
    """How many JSON values ``value`` holds, itself included."""
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


# -- what each keyword costs beyond its one step ---------------------------------------------
# jsonschema's descent into a subschema (a new validator object, a resource, a resolver)
# costs several keyword evaluations: each keyword pays for the descents it will make.


def _descents(budget: Budget, count: int) -> int:
    return count * budget.rates.descend


def _each_value(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    return _descents(budget, len(value)) if isinstance(value, list) else 0


def _matched(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    if not (isinstance(value, dict) and isinstance(instance, dict)):
        return 0
    present = len(value.keys() & instance.keys())
    return len(value) // budget.rates.loop + _descents(budget, present)


def _items(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    if not isinstance(instance, list):
        return 0
    prefix = schema.get("prefixItems", ())
    return _descents(budget, max(0, len(instance) - len(prefix)))


def _prefix(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    if not (isinstance(value, list) and isinstance(instance, list)):
        return 0
    return _descents(budget, min(len(value), len(instance)))


def _each_member(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    return _descents(budget, len(instance)) if isinstance(instance, list | dict) else 0


def _one(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    return _descents(budget, 1)


def _branch(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    return _descents(budget, 2)  # `if`, then `then` or `else`


def _compared(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    return budget.nodes_of(value)


def _listed(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    return budget.nodes_of(value) // budget.rates.loop


def _reference(budget: Budget, value: Any, instance: Any, schema: Any) -> int:
    length = len(value) if isinstance(value, str) else 0
    return budget.rates.reference + length // budget.rates.message_chars


Cost = Callable[[Budget, Any, Any, Any], int]
#: What keywords cost beyond their one step: the descents they make (not what happens
#: inside, which pays for itself), values compared, lists walked. The replaced keywords
#: (hookline.json_schema.keywords) pay inside. The others are O(1).
COSTS: dict[str, Cost] = {
    "properties": _matched,
    "dependentSchemas": _matched,
    "prefixItems": _prefix,
    "items": _items,
    "contains": _each_member,
    "propertyNames": _each_member,
    "allOf": _each_value,
    "anyOf": _each_value,
    "oneOf": _each_value,
    "not": _one,
    "if": _branch,
    "enum": _compared,
    "const": _compared,
    "required": _listed,
    "dependentRequired": _listed,
    "$ref": _reference,
    "$dynamicRef": _reference,
}


def counted(name: str, keyword: Keyword) -> Keyword:
    """``keyword``, paying its steps and its messages to the current budget."""
    cost = COSTS.get(name)

    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        budget = _CURRENT.get()
        if budget is None:
            return keyword(validator, value, instance, schema)
        budget.spend(1 if cost is None else 1 + cost(budget, value, instance, schema))
        errors = keyword(validator, value, instance, schema)
        return None if errors is None else _paid(budget, errors)

    run.__name__ = run.__qualname__ = keyword.__name__
    return run


def _paid(budget: Budget, errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """The errors, each message paid for by the first wrapper it passes through (a message
    can be as long as the instance it quotes); and the nesting counted, so that depth is
    refused by a count rather than by Python's recursion limit, which depends on the stack
    the validation started from (and which referencing's Rust maps, rpds, turn into a
    panic that no `except RecursionError` catches)."""
    budget.depth += 1
    try:
        if budget.depth > budget.max_depth:
            raise TooDeep(budget.max_depth)
        per_step = budget.rates.message_chars
        for error in errors:
            marks = vars(error)
            if _PAID not in marks:
                marks[_PAID] = True
                budget.spend(budget.rates.error + len(error.message) // per_step)
                # anyOf/oneOf errors keep their branches' errors, which point back at them:
                # a cycle per error, left to the cyclic GC, whose full passes then stop
                # every thread, the event loop's too. Nothing reads the context here.
                if error.context:
                    error.context = []
            yield error
    finally:
        budget.depth -= 1


# -- JSON equality in O(n) -------------------------------------------------------------------


def json_key(value: Any, budget: Budget | None) -> Any:
    """A hashable key equal for JSON-equal values and only for them: 1 == 1.0, true != 1,
    object key order ignored, arrays in order. Strings hash with Python's per-process
    random key; numbers of up to 63 bits hash to themselves, and at most a handful of them
    share a hash (hash(n) is n mod 2**61 - 1), so crafted numbers cannot make the keys
    collide; larger integers are keyed by their digits."""
    count = [0]
    key = _key(value, count)
    if budget is not None:
        budget.spend(count[0] * budget.rates.hash_nodes)
    return key


_BIG = 2**63


def _key(value: Any, count: list[int]) -> Any:
    count[0] += 1
    if value is True or value is False:
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, int | float):
        if -_BIG < value < _BIG:
            return ("n", value)
        if isinstance(value, float) and not value.is_integer():  # inf: not JSON anyway
            return ("n", value)
        return ("n", hex(int(value)))
    if value is None:
        return ("z",)
    if isinstance(value, list):
        return ("a", tuple([_key(item, count) for item in value]))
    if isinstance(value, dict):
        return ("o", frozenset([(k, _key(v, count)) for k, v in value.items()]))
    return ("?", repr(value))


def first_duplicate(items: list[Any]) -> tuple[int, int] | None:
    """The indexes of the first item JSON-equal to an earlier one and of that earlier one,
    or None when all are unique. O(n) in the size of ``items``."""
    budget = _CURRENT.get()
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        earlier = seen.setdefault(json_key(item, budget), index)
        if earlier != index:
            return index, earlier
    return None
