"""Patterns on RE2: compiled once, searched at a cost known before the search runs.

RE2 never backtracks, so ``^(a+)+$`` takes time linear in the text. Linear is not yet cheap:
RE2 runs a lazily built DFA, and when a pattern is ambiguous (``[ab]*a[ab]{200}c``) the DFA's
states outnumber its cache and RE2 steps an NFA instead, whose work per byte grows with the
number of pattern positions active at once (measured: ~13 us a byte for ``[ab]{999}``). So
each compiled pattern carries two bounds computed from its structure (a Glushkov position
automaton in which every position matches any character, an over-approximation):

- ``active``: the most positions that can be active at once, forwards and backwards (RE2
  runs a reverse DFA to find where a match starts);
- ``states``: an upper bound on the DFA states RE2 can build, or None past ``SAFE_STATES``.

:meth:`Pattern.units` turns a search into work units from them; the budget
(:mod:`hookline.json_schema.budget`) turns units into steps. The analysis
(:mod:`hookline.json_schema.pattern_cost`) only needs to be sound, not exact: whatever it does not
follow falls back to RE2's program size, which bounds the positions from above.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import re2

from hookline.json_schema.pattern_cost import Unparsed, bounds

#: RE2's memory for one pattern, program and DFA caches (RE2's default is 8 MiB). RE2 gives
#: up compiling a program past it (~100,000 instructions, ~0.1 s to find out); registration
#: refuses patterns past json_schema.MAX_PATTERN_PROGRAM.
MAX_MEM = 2 << 20
#: DFA states (bytes, not characters) that surely fit RE2's cache at ``MAX_MEM``: a state
#: takes at most ~2 KiB, and each DFA gets ~1/4 to 1/3 of MAX_MEM, less the program
SAFE_STATES = 200
# The cost model, in work units of 10 ns, fitted with a margin to searches measured on this
# machine (2 cores): `[ab]*a[ab]{k}c` for k up to 999 over a/b text, alternations of \p{L},
# \p{So}, \P{Lu} over Greek, CJK and emoji text, `^[\p{L} '-]{1,100}$` over mixed letters.
# When RE2's DFA thrashes or RE2 steps its NFA, a byte costs up to ~500 ns plus ~12 ns per
# active position for patterns of small classes, ~90 ns per active position for big
# Unicode classes (UTF-8 makes the program over 4 times its Latin-1 size: \p{..}, `.`,
# negated classes): FIXED + active * SIMPLE or HEAVY units. Scanning a DFA whose states are
# all cached costs <= 6 ns a byte, UTF-8 encoding included: SCAN units a byte.
FIXED = 50
SIMPLE = 2
HEAVY = 12
SCAN = 1
_UNANCHORED = vars(re2)["_Anchor"].UNANCHORED  # the binding's enum; not in its stubs


class PatternError(ValueError):
    """RE2 cannot run the pattern; ``str(error)`` says why."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(reason)
        self.pattern = pattern


@dataclass(frozen=True, slots=True)
class Pattern:
    source: str
    program: int  # RE2's instructions for the pattern (UTF-8), the larger direction
    effort: int  # ~us it took to compile and analyse: the program plus 20 a position
    active: int
    states: int | None
    per_byte: int  # work units a byte when RE2 steps its NFA or builds DFA states
    _match: Any  # the binding's own Match: no match object, no offset decoding

    def search(self, data: bytes) -> bool:
        """Whether the pattern occurs in ``data``, UTF-8 (``str.encode("utf-8",
        "surrogatepass")``: lone surrogates then match no character class)."""
        return bool(self._match(_UNANCHORED, data, 0, len(data))[0][0] != -1)

    def units(self, size: int, states_paid: int) -> tuple[int, int]:
        """Work units to search ``size`` bytes, and the DFA states paid for after it when
        ``states_paid`` were before (in this validation). With few enough DFA states, each
        is built once (at most one a byte) and the rest is scanning; otherwise every byte
        may be the slow case."""
        if self.states is None:
            return size * self.per_byte, states_paid
        new = max(0, min(size + 1, self.states - states_paid))
        return new * self.per_byte + size * SCAN, states_paid + new


def compiled(size: int) -> Callable[[str], Pattern]:
    """A cached compiler of patterns (JSON Schema's ECMA-262 syntax) to :class:`Pattern`."""

    @lru_cache(maxsize=size)
    def compile_pattern(pattern: str) -> Pattern:
        options = re2.Options()
        options.log_errors = False
        options.never_capture = True
        options.max_mem = MAX_MEM
        translated = translate(pattern)
        try:
            regex = re2.compile(translated.encode("utf-8", "surrogatepass"), options)
        except re2.error as exc:
            raise PatternError(pattern, _reason(exc)) from None
        program = max(regex.programsize, regex.reverseprogramsize)
        try:
            active, states, positions = bounds(translated, SAFE_STATES)
        except (Unparsed, RecursionError):
            active, states, positions = program, None, 0
        active = min(active, program)
        # how much UTF-8 multiplies the program: 1 for ASCII classes, ~8 for `.`, ~160 for
        # \p{L} (RE2 compiles a class to a trie of byte ranges); without a Latin-1 form
        # (characters past U+00FF), the instructions per position
        widen = _widening(translated, options, program, positions)
        per_byte = FIXED + active * (HEAVY if widen > 4 else SIMPLE)
        if states is not None:  # a character's DFA state is up to `widen` byte states
            states *= widen
            if states > SAFE_STATES:
                states = None
        effort = program + 20 * positions
        match = cast(Any, regex)._regexp.Match
        return Pattern(pattern, program, effort, active, states, per_byte, match)

    return compile_pattern


def _widening(translated: str, options: re2.Options, program: int, positions: int) -> int:
    try:
        narrow = translated.encode("latin-1")
        options.encoding = cast(Any, re2.Options).Encoding.LATIN1
        latin1 = re2.compile(narrow, options)
        base = max(latin1.programsize, latin1.reverseprogramsize, 1)
    except (UnicodeEncodeError, re2.error):
        base = max(positions, 1)
    return -(-program // base)


def translate(pattern: str) -> str:
    """ECMA-262's ``\\uXXXX`` and ``\\u{X...}`` escapes in RE2's spelling, ``\\x{...}``."""
    if "\\u" not in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            if pattern[i + 1] == "u":
                four = pattern[i + 2 : i + 6]
                if len(four) == 4 and all(c in _HEX for c in four):
                    out.append(f"\\x{{{four}}}")
                    i += 6
                    continue
                close = pattern.find("}", i + 3)
                digits = pattern[i + 3 : close]
                if pattern[i + 2 : i + 3] == "{" and close > 0 and _is_hex(digits):
                    out.append(f"\\x{{{digits}}}")
                    i = close + 1
                    continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in _HEX for c in text)


def _reason(exc: re2.error) -> str:
    raw = exc.args[0] if exc.args else exc
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if "invalid perl operator: (?=" in text or "invalid perl operator: (?!" in text:
        return f"lookaheads are not supported ({text})"
    if "invalid perl operator: (?<" in text:
        return f"lookbehinds are not supported ({text})"
    if re.search(r"invalid escape sequence: \\([1-9]|k)", text):
        return f"backreferences are not supported ({text})"
    if "pattern too large" in text:
        return f"the pattern is too big for RE2's {MAX_MEM >> 20} MiB memory limit ({text})"
    return text
