"""Bounds on the work RE2 can do for a pattern, from the pattern's structure alone.

The pattern (RE2 syntax, already accepted by RE2) is parsed for structure only and turned
into its Glushkov position automaton, in which every position matches any character: an
over-approximation, so the set of positions active after k characters of any input is a
subset of the k-th set computed here. From the sequence of those sets (over a one-letter
alphabet it is deterministic and soon repeats) come the most positions active at once, which
bounds the work of RE2's NFA per byte, and the sum of 2^|set|, which bounds the states RE2's
DFA can build (each is a subset of one of them). Counted repetition is expanded as RE2
simplifies it (``x{2,4}`` is ``xx(x(x)?)?``). Anything unexpected raises :class:`Unparsed`.
"""

from __future__ import annotations

import re

_CAP = 96  # positions past which the analysis is not attempted (the bound is then P)
_ZERO_WIDTH_ESCAPES = frozenset("bBAz")

# Nodes: ("pos",) one character; ("bol",) start anchor; ("empty",) zero width; ("flags",)
# ("cat", [nodes]); ("alt", [nodes]); ("rep", node, min, max or None).
Node = tuple[object, ...]


class Unparsed(Exception):
    """The analysis does not follow this pattern (the caller falls back to RE2's size)."""


def bounds(pattern: str, safe_states: int) -> tuple[int, int | None, int]:
    """The most positions active at once (forwards or backwards), a bound on the DFA states
    of each direction (None past ``safe_states``), and the number of positions."""
    parser = _Parser(pattern)
    tree = parser.alternation()
    if parser.i != len(pattern):
        raise Unparsed
    anchored = not parser.multiline and _starts_anchored(tree)
    forward = _Automaton(tree)
    backward = _Automaton(_reversed(tree))
    a1, s1 = forward.run(anchored, safe_states)
    a2, s2 = backward.run(True, safe_states)  # the reverse search starts where a match ended
    states = None if s1 is None or s2 is None else max(s1, s2)
    return max(a1, a2), states, len(forward.follow)


def _starts_anchored(node: Node) -> bool:
    if node[0] == "bol":
        return True
    if node[0] == "cat":
        parts = [p for p in node[1] if p[0] != "flags"]  # type: ignore[attr-defined]
        return bool(parts) and _starts_anchored(parts[0])
    return False


def _reversed(node: Node) -> Node:
    kind = node[0]
    if kind == "cat":
        parts = node[1]
        assert isinstance(parts, list)
        return ("cat", [_reversed(p) for p in reversed(parts)])
    if kind == "alt":
        parts = node[1]
        assert isinstance(parts, list)
        return ("alt", [_reversed(p) for p in parts])
    if kind == "rep":
        sub = node[1]
        assert isinstance(sub, tuple)
        return ("rep", _reversed(sub), node[2], node[3])
    return node


class _Parser:
    """RE2 syntax, after RE2 accepted the pattern: structure only, every atom one position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.multiline = False

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def alternation(self) -> Node:
        parts = [self.concatenation()]
        while self.peek() == "|":
            self.i += 1
            parts.append(self.concatenation())
        return parts[0] if len(parts) == 1 else ("alt", parts)

    def concatenation(self) -> Node:
        parts: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            while True:
                quantified = self.quantifier(atom)
                if quantified is None:
                    break
                atom = quantified
            parts.append(atom)
        return ("cat", parts)

    def quantifier(self, atom: Node) -> Node | None:
        ch = self.peek()
        bounds: tuple[int, int | None]
        if ch in ("*", "+", "?"):
            self.i += 1
            bounds = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
        elif ch == "{":
            found = _REPEAT.match(self.text, self.i)
            if found is None:
                return None
            self.i = found.end()
            low, comma, most = found.group(1, 2, 3)
            high = int(low) if comma is None else (int(most) if most else None)
            bounds = (int(low), high)
        else:
            return None
        if self.peek() == "?":  # lazy: the same positions
            self.i += 1
        return ("rep", atom, bounds[0], bounds[1])

    def atom(self) -> Node:
        ch = self.text[self.i]
        self.i += 1
        if ch == "(":
            return self.group()
        if ch == "[":
            self.char_class()
            return ("pos",)
        if ch == "\\":
            return self.escape()
        if ch == "^":
            return ("bol",)
        if ch == "$":
            return ("empty",)
        return ("pos",)

    def group(self) -> Node:
        if self.text.startswith("?", self.i):
            named = re.compile(r"\?P?<[^>]*>").match(self.text, self.i)
            if named is not None:
                self.i = named.end()
            else:
                flags = re.compile(r"\?([imsU-]*)([:)])").match(self.text, self.i)
                if flags is None:
                    raise Unparsed
                self.i = flags.end()
                if "m" in flags.group(1):
                    self.multiline = True
                if flags.group(2) == ")":
                    return ("flags",)
        inner = self.alternation()
        if self.peek() != ")":
            raise Unparsed
        self.i += 1
        return inner

    def escape(self) -> Node:
        ch = self.text[self.i]
        self.i += 1
        if ch in _ZERO_WIDTH_ESCAPES:
            return ("bol",) if ch == "A" else ("empty",)
        if ch == "Q":
            end = self.text.find("\\E", self.i)
            stop = len(self.text) if end < 0 else end
            literal = stop - self.i
            self.i = stop if end < 0 else end + 2
            return ("cat", [("pos",)] * literal)
        self.skip_escape_tail(ch)
        return ("pos",)

    def skip_escape_tail(self, ch: str) -> None:
        if ch in ("x", "p", "P"):
            if self.peek() == "{":
                close = self.text.find("}", self.i)
                if close < 0:
                    raise Unparsed
                self.i = close + 1
            else:
                self.i += 2 if ch == "x" else 1
        elif ch in "01234567":
            while self.peek() and self.peek() in "01234567":
                self.i += 1

    def char_class(self) -> None:
        if self.peek() == "^":
            self.i += 1
        if self.peek() == "]":
            self.i += 1
        while True:
            ch = self.peek()
            if ch == "":
                raise Unparsed
            self.i += 1
            if ch == "]":
                return
            if ch == "[" and self.peek() == ":":
                close = self.text.find(":]", self.i)
                if close < 0:
                    raise Unparsed
                self.i = close + 2
            elif ch == "\\":
                tail = self.text[self.i]
                self.i += 1
                self.skip_escape_tail(tail)


_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


class _Automaton:
    """Glushkov positions of a tree; every position matches any character."""

    def __init__(self, tree: Node) -> None:
        self.follow: list[int] = []
        self.first, _, _ = self.build(tree)

    def position(self) -> tuple[int, int, bool]:
        p = len(self.follow)
        if p >= _CAP:
            raise Unparsed
        self.follow.append(0)
        return 1 << p, 1 << p, False

    def build(self, node: Node) -> tuple[int, int, bool]:
        kind = node[0]
        if kind == "pos":
            return self.position()
        if kind in ("bol", "empty", "flags"):
            return 0, 0, True
        if kind in ("cat", "alt"):
            parts = node[1]
            assert isinstance(parts, list)
            built = [self.build(p) for p in parts]
            if kind == "alt":
                return _union(built)
            result = (0, 0, True)
            for part in built:
                result = self.concatenate(result, part)
            return result
        sub, low, high = node[1], node[2], node[3]
        assert isinstance(sub, tuple) and isinstance(low, int)
        result = (0, 0, True)
        for _ in range(low):
            result = self.concatenate(result, self.build(sub))
        if high is None:
            first, last, _ = self.build(sub)
            self.link(last, first)
            return self.concatenate(result, (first, last, True))
        assert isinstance(high, int)
        optional = (0, 0, True)  # x{2,4} is xx(x(x)?)?, as RE2 simplifies it
        for _ in range(high - low):
            optional = self.concatenate(self.build(sub), optional)
            optional = (optional[0], optional[1], True)
        return self.concatenate(result, optional)

    def link(self, sources: int, targets: int) -> None:
        while sources:
            low = sources & -sources
            self.follow[low.bit_length() - 1] |= targets
            sources ^= low

    def concatenate(
        self, a: tuple[int, int, bool], b: tuple[int, int, bool]
    ) -> tuple[int, int, bool]:
        self.link(a[1], b[0])
        first = a[0] | (b[0] if a[2] else 0)
        last = b[1] | (a[1] if b[2] else 0)
        return first, last, a[2] and b[2]

    def run(self, anchored: bool, safe_states: int) -> tuple[int, int | None]:
        """The most positions active at once, and a bound on the DFA's states (None when
        it is past ``safe_states``), over every input: active sets only shrink from these."""
        positions = len(self.follow)
        active, states, seen = 0, 0, set()
        current = self.first
        for _ in range(4 * positions + 16):
            if current in seen:
                return active, (states if states <= safe_states else None)
            seen.add(current)
            count = current.bit_count()
            active = max(active, count)
            states += 1 << min(count, 20)
            if current == 0:
                return active, (states if states <= safe_states else None)
            following = self.first if not anchored else 0
            rest = current
            while rest:
                low = rest & -rest
                following |= self.follow[low.bit_length() - 1]
                rest ^= low
            current = following
        return positions, None


def _union(parts: list[tuple[int, int, bool]]) -> tuple[int, int, bool]:
    first = last = 0
    nullable = False
    for f, la, n in parts:
        first, last, nullable = first | f, last | la, nullable or n
    return first, last, nullable
