"""Lark LALR grammars of the NGSI-LD query languages (ETSI GS CIM 009 clauses 4.9, 4.10, 4.17, 4.19).

Built once at import. The contextual lexer matters: the same characters are an attribute name, a
value or a regex depending on the parser state, which is what lets ``10..20``, date-times and
unquoted regexes with parentheses coexist in one language.
"""

from __future__ import annotations

from lark import Lark

# An unquoted regex runs to the end of the term: it stops at ``;`` ``|`` or an unbalanced ``)``
# at nesting level 0, but may contain balanced parentheses (up to 4 levels) holding anything.
_ESC = r"\\."


def _paren(depth: int) -> str:
    inner = rf"{_ESC}|[^()\\]"
    if depth > 1:
        inner += "|" + _paren(depth - 1)
    return rf"\((?:{inner})*\)"


_RAW_REGEX = rf"(?:{_ESC}|[^;|()\"\\]|{_paren(4)})(?:{_ESC}|[^;|()\\]|{_paren(4)})*"

Q_GRAMMAR = r"""
?start: disj
?disj: conj ("|" conj)*
?conj: atom (";" atom)*
?atom: term
     | "(" disj ")"

term: path                     -> exists
    | path CMPOP value         -> compare
    | path EQOP eqvalue        -> compare
    | path MATCHOP regex       -> pattern

?eqvalue: value
        | value ".." value     -> range
        | value ("," value)+   -> vlist

value: STRING | VALUE
regex: STRING | RAWREGEX

path: name ("." name)* ("[" KEY "]")*
name: IRI | BRACKET_IRI | ATTRNAME

CMPOP: ">=" | "<=" | ">" | "<"
EQOP: "==" | "!="
MATCHOP: "~=" | "!~="
STRING: /"(?:[^"\\]|\\.)*"/
VALUE: /[^;|()",.\s=<>!~][^;|()",.\s=]*(?:\.[^;|()",.\s=]+)*/
RAWREGEX: /""" + _RAW_REGEX + r"""/
IRI.2: /[A-Za-z][A-Za-z0-9+.\-]*:\/\/[^\s;|()\[\]"<>=!~,]+/
BRACKET_IRI: /<[^<>\s"]+>/
ATTRNAME: /[\w@:#\/\-]+/
KEY: /[^\[\]]+/
"""

TYPE_GRAMMAR = r"""
?start: disj
?disj: conj (("|" | ",") conj)*
?conj: atom (";" atom)*
?atom: TYPENAME -> typename
     | "(" disj ")"
TYPENAME: /[^\s,;|()]+/
"""

SCOPE_GRAMMAR = r"""
?start: disj
?disj: conj (("|" | ",") conj)*
?conj: atom (";" atom)*
?atom: SCOPE -> scope
     | "(" disj ")"
SCOPE: /\/(?:#|(?:\+|[^\/;|(),#+\s]+)(?:\/(?:\+|[^\/;|(),#+\s]+))*(?:\/#)?)/
"""

GEOREL_GRAMMAR = r"""
start: NEAR ";" DISTKIND "==" NUMBER   -> near
     | RELNAME                          -> relation
NEAR: "near"
DISTKIND: "maxDistance" | "minDistance"
RELNAME: "within" | "contains" | "intersects" | "disjoint" | "overlaps" | "equals"
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
"""


def _build(grammar: str) -> Lark:
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=False,
                maybe_placeholders=False)


Q_PARSER = _build(Q_GRAMMAR)
TYPE_PARSER = _build(TYPE_GRAMMAR)
SCOPE_PARSER = _build(SCOPE_GRAMMAR)
GEOREL_PARSER = _build(GEOREL_GRAMMAR)
