"""Regexes of ``~=`` and idPattern: Python compilation, and translation to a portable dialect.

The evaluator uses Python ``re``; the MongoDB filter runs on PCRE (MongoDB) or Go RE2 (FerretDB).
Only a conservative subset of Python syntax is translated, re-serialised from Python's own parse
tree so that the pushed-down regex matches exactly the same strings in all three engines. Anything
else (classes like ``\\d`` whose Unicode meaning differs, flags, look-around, backreferences, ``\\b``)
yields None and the caller must fall back to a superset filter.
"""

from __future__ import annotations

import re
import re._constants as C  # noqa: N812
import re._parser as sre_parse
from functools import lru_cache

from broker.errors import BadRequestData

MAX_REGEX_LENGTH = 512
_RE2_MAX_REPEAT = 1000


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a user regex once; bad or oversized patterns are the client's fault.

    Python's ``re`` backtracks: a quantifier inside a repeated group (``(a+)+``) or a backreference
    can take exponential time and would stall the event loop, so such patterns are refused.
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        raise BadRequestData(f"Regular expression longer than {MAX_REGEX_LENGTH} characters")
    try:
        parsed = sre_parse.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise BadRequestData(f"Invalid regular expression {pattern!r}: {exc}") from None
    if _backtracks(list(parsed), inside_repeat=False):
        raise BadRequestData(f"Regular expression {pattern!r} nests quantifiers or uses backreferences, "
                             "which can take exponential time; rewrite it without them")
    return compiled


_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT))


def _backtracks(items: list, inside_repeat: bool) -> bool:
    """True for a repeat (max > 1) nested in another one, or a backreference."""
    for op, av in items:
        if op in _REPEATS:
            _lo, hi, sub = av
            repeats = hi > 1
            if repeats and inside_repeat:
                return True
            if _backtracks(list(sub), inside_repeat or repeats):
                return True
        elif op == C.SUBPATTERN:
            if _backtracks(list(av[-1]), inside_repeat):
                return True
        elif op == C.BRANCH:
            if any(_backtracks(list(b), inside_repeat) for b in av[1]):
                return True
        elif op in (C.ASSERT, C.ASSERT_NOT):
            if _backtracks(list(av[1]), inside_repeat):
                return True
        elif op in (C.GROUPREF, C.GROUPREF_EXISTS):
            return True
    return False


def escape_char(code: int) -> str:
    """Spell one literal character so that Python, PCRE and RE2 all read it literally."""
    ch = chr(code)
    if ch.isascii() and (ch.isalnum() or ch == "_"):
        return ch
    if code < 0x21 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x80:
        return "\\" + ch  # ASCII punctuation: escaping is literal in every engine
    return ch


def escape_text(text: str) -> str:
    """Portable ``re.escape`` (Python's escapes spaces/newlines in ways RE2 rejects)."""
    return "".join(escape_char(ord(c)) for c in text)


class _Unsafe(Exception):
    pass


def _seq(items: list, top: bool, full: bool) -> str:
    out = []
    for i, (op, av) in enumerate(items):
        if op is C.AT and av in (C.AT_END, C.AT_END_STRING):
            if not (top and i == len(items) - 1):
                raise _Unsafe
            # Python "$" also matches before a final newline; RE2 "$" does not. At the very end
            # of the pattern "\n?\z" is equivalent for a search; a full match ends at \z anyway.
            out.append("\\z" if full or av is C.AT_END_STRING else "\\n?\\z")
        else:
            out.append(_item(op, av, full))
    return "".join(out)


def _item(op: object, av: object, full: bool) -> str:
    if op is C.LITERAL:
        return escape_char(av)  # type: ignore[arg-type]
    if op is C.NOT_LITERAL:
        return "[^" + escape_char(av) + "]"  # type: ignore[arg-type]
    if op is C.ANY:
        return "."
    if op is C.IN:
        parts = []
        neg = ""
        for sop, sav in av:  # type: ignore[union-attr]
            if sop is C.NEGATE:
                neg = "^"
            elif sop is C.LITERAL:
                parts.append(escape_char(sav))
            elif sop is C.RANGE:
                parts.append(escape_char(sav[0]) + "-" + escape_char(sav[1]))
            else:
                raise _Unsafe
        if not parts:
            raise _Unsafe
        return "[" + neg + "".join(parts) + "]"
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        low, high, sub = av  # type: ignore[misc]
        if low > _RE2_MAX_REPEAT or (high is not C.MAXREPEAT and high > _RE2_MAX_REPEAT):
            raise _Unsafe
        body = "(?:" + _seq(list(sub), False, full) + ")"
        if high is C.MAXREPEAT:
            quant = "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
        elif low == high:
            quant = f"{{{low}}}"
        else:
            quant = "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"
        return body + quant
    if op is C.SUBPATTERN:
        _group, add_flags, del_flags, sub = av  # type: ignore[misc]
        if add_flags or del_flags:
            raise _Unsafe
        return "(?:" + _seq(list(sub), False, full) + ")"
    if op is C.BRANCH:
        _, alts = av  # type: ignore[misc]
        return "(?:" + "|".join(_seq(list(a), False, full) for a in alts) + ")"
    if op is C.AT and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
        return "^"
    raise _Unsafe


@lru_cache(maxsize=1024)
def to_portable(pattern: str, full: bool = False) -> str | None:
    """Equivalent regex for PCRE/RE2 (anchored as ``^(?:..)\\z`` when ``full``), or None."""
    compile_regex(pattern)
    try:
        tree = sre_parse.parse(pattern)
        if tree.state.flags & ~re.UNICODE:
            return None
        body = _seq(list(tree), True, full)
    except (_Unsafe, re.error, RecursionError):
        return None
    return "^(?:" + body + ")\\z" if full else body
