"""Fast recogniser for STIX 2.1 indicator patterns.

stix2 3.0.2 validates an Indicator's ``pattern`` (when ``pattern_type`` is
``"stix"``) by calling ``stix2patterns.validator.run_validator(pattern,
pattern_version)`` and refusing the object if any error comes back.  That
validator (stix2-patterns 2.1.2) is an ANTLR parser costing roughly 5-12
microseconds per byte, far too slow for bulk imports.  This module re-implements
the same decision by hand: a single-regex lexer that reproduces the ANTLR lexer
token for token (longest match, the catch-all ``InvalidCharacter`` token; it
only stops early at an unterminated string or comment, which no parse
survives), a recursive-descent parser for the same grammar, and the extra
checks stix2patterns performs after a clean parse.  It is some 30-60 times
faster, and linear on pathological inputs where ANTLR is quadratic.

Soundness contract of :func:`check`
-----------------------------------
* ``True``  -- stix2patterns would report no error, i.e. an Indicator with
  ``pattern_type="stix"`` and this ``pattern_version`` is accepted as far as the
  pattern goes.  Never returned for a pattern that stix2 rejects (provided
  stix2 is called with fewer than ~550 frames on the Python stack, under the
  default recursion limit of 1000: see MAX_TREE_DEPTH).
* ``False`` -- stix2 certainly rejects the pattern (stix2patterns reports an
  error; for absurdly deep malformed input it may crash instead).
* ``None``  -- not sure: the caller must fall back to stix2patterns.  Returned
  for pattern versions other than 2.1 (stix2 then uses the 2.0 grammar), for
  non-string or empty input, and for inputs on which stix2patterns itself
  crashes rather than reporting an error: a negative list index, an integer
  index as a hash selector, or a parse tree too deep for Python's recursion
  limit (hundreds of chained operators or qualifiers, ~100 nested parentheses;
  see MAX_TREE_DEPTH).

What stix2patterns 2.1.2 checks (and this module reproduces)
-----------------------------------------------------------
1. The 2.1 grammar (case-sensitive keywords, ``true``/``false`` lower case,
   property names without hyphens unless quoted, timestamps
   ``t'YYYY-MM-DDTHH:MM:SS[.f+]Z'`` with month 01-12, day 01-31, hour 00-23,
   second 00-60 but no calendar check, hex with an even number of digits,
   padded non-empty base64, ``/* */`` and ``//`` comments skipped).
2. ``helpers.brackets_check``: after leading ``(`` and whitespace the first
   character must be ``[`` (so a leading comment is rejected).
3. ``v21.object_validator``: for every comparison whose object path contains a
   ``hashes`` component, the value text (quotes removed) must match the
   regex of the hash named by the last path component (``MD5``, ``SHA-256``
   ...).  This applies to every operator, so e.g. ``file:hashes.MD5 MATCHES
   '^ab'`` or ``file:hashes.MD5 IN (...)`` are rejected.
4. ``v21.validator.ValidationListener``: the same qualifier type may not be
   applied twice directly to a bracketed observation (it may to a
   parenthesised group).

Qualifier values are *not* range-checked by stix2patterns: ``REPEATS 0
TIMES``, ``WITHIN 0 SECONDS`` and ``START`` after ``STOP`` are accepted.
Object types and property names are not checked against the STIX vocabulary.

The differential tests in tests/notes/test_fastpattern.py compare this module
with stix2/stix2patterns (corpus, hand-written edge cases, grammar-generated
and mutated patterns, and the lexer token by token).
"""

from __future__ import annotations

import re

from stix2patterns.v21.object_validator import HASHES_REGEX

__all__ = ["check"]

# stix2patterns builds an ANTLR parse tree and walks it recursively, so a pattern
# whose tree is deeper than what is left of Python's recursion limit (1000 by
# default) makes it raise RecursionError: e.g. ~980 chained ORs or ~240 nested
# parentheses when called from a shallow stack, fewer from a deeper one.  The
# verdict then depends on the caller's stack, so patterns whose (over-estimated)
# tree depth exceeds MAX_TREE_DEPTH get None, leaving the caller at least ~550
# frames of headroom.
MAX_TREE_DEPTH = 400
# Every nesting level adds at least 3 to the tree depth: deeper inputs are
# given up on early, which also bounds this module's own recursion.
_MAX_NESTING = MAX_TREE_DEPTH // 3 + 1

# Same regexes, same semantics (re.match, not fullmatch) as stix2patterns.
_HASH_RES = {name: re.compile(rx).match for name, (rx, _label) in HASHES_REGEX.items()}

# ---------------------------------------------------------------------------
# Lexer.  One findall() returns the tokens: whitespace and comments are skipped
# (possessively, so a comment is never re-read as "/" "*"), and the
# alternatives are ordered so that Python's first match is ANTLR's longest
# match.  Each match is a pair (token, rest): "rest" is an unterminated string
# or comment opener, where ANTLR produces a QUOTE or DIVIDE token that no
# parser rule accepts; it swallows the remaining input, which keeps the lexer
# linear (ANTLR rescans to the end from every later quote / "/*").  A float
# cannot start right after a digit in ANTLR's tokenization (only after "0",
# whose float attempt already failed), hence the lookbehind that keeps runs
# of zeros linear too.  The final empty match (at \Z) ends the list.
_WS = "[ \t\r\n\x0b\x0c\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_B64 = "[A-Za-z0-9+/]"
_TOKEN_RE = re.compile(
    rf"""
    (?:{_WS}|/\*.*?\*/|//[^\r\n]*)*+
    (?:
      ( t'[0-9]{{4}}-(?:0[1-9]|1[012])-(?:0[1-9]|[12][0-9]|3[01])
          T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?Z'
      | h'(?:[0-9A-Fa-f]{{2}})*'
      | b'(?:{_B64}{{4}})*(?:{_B64}{{4}}|{_B64}{{3}}=|{_B64}{{2}}==)'
      | [A-Za-z_][A-Za-z0-9_-]*
      | [+-][0-9]*\.[0-9]+ | (?<![0-9])[0-9]+\.[0-9]+ | \.[0-9]+
      | [+-]?(?:0|[1-9][0-9]*)
      | '(?:[^'\\]++|\\['\\])*+'
      | ==|!=|<>|<=|>=
      | (?!/\*)[^']
      | \Z
      )
    | ( '.* | /\*.* )
    )
    """,
    re.VERBOSE | re.DOTALL,
)

# Token kinds.  Tokens whose text fixes the kind: keywords (case-sensitive),
# operators and punctuation.  "bad" covers tokens no grammar rule uses (QUOTE,
# PLUS, HYPHEN, POWER_OP, DIVIDE, InvalidCharacter); "<" all order operators.
_FIXED = {
    kw: kw
    for kw in (
        "AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET",
        "EXISTS", "LAST", "IN", "START", "STOP", "SECONDS", "WITHIN", "REPEATS", "TIMES",
    )
}
_FIXED.update({
    "true": "bool", "false": "bool",
    "=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<", ">": "<", ">=": "<",
    ":": ":", ".": ".", ",": ",", "(": "(", ")": ")", "[": "[", "]": "]", "*": "*",
    "+": "bad", "-": "bad", "^": "bad", "/": "bad",
})
# Otherwise the first character decides (a lone character of any other kind is
# an InvalidCharacter).
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_FIRST = dict.fromkeys(_LETTERS, "id")
_FIRST.update(dict.fromkeys("0123456789+.", "num"))
_FIRST.update({"-": "-num", "'": "str"})
_PREFIXED = {"t": "ts", "h": "hex", "b": "bin"}  # t'...', h'...', b'...'
_EOF = "eof"
_EOF_PAD = (_EOF,) * 4

_ORDERABLE = frozenset({"int", "-int", "float", "-float", "str", "bin", "hex", "ts"})
_PRIMITIVE = _ORDERABLE | {"bool"}
_STRING_OPS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})


def _tokenize(pattern: str) -> tuple[list[str], list[str]]:
    """Return the token kinds and texts, followed by a few "eof" sentinels."""
    kinds = []
    texts = []
    fixed = _FIXED
    first = _FIRST
    for text, rest in _TOKEN_RE.findall(pattern):
        if not text:
            if rest:
                kinds.append("bad")
                texts.append(rest)
            break
        texts.append(text)
        kind = fixed.get(text)
        if kind is None:
            kind = first.get(text[0], "bad")
            if kind == "id":
                if len(text) > 1 and text[1] == "'":
                    kind = _PREFIXED[text[0]]
                elif "-" in text:
                    kind = "idh"
            elif kind == "num":
                kind = "float" if "." in text else "int"
            elif kind == "-num":
                kind = "-float" if "." in text else "-int"
        kinds.append(kind)
    # Several sentinels, so that the parser may peek a few tokens ahead.
    kinds += _EOF_PAD
    texts += _EOF_PAD
    return kinds, texts


# ---------------------------------------------------------------------------
# Parser.


class _Reject(Exception):
    """The input certainly fails stix2patterns validation."""


class _Unsure(Exception):
    """stix2patterns would crash, or we do not want to decide."""


def _unquote(text: str) -> str:
    # Same (order-dependent) unescaping as stix2patterns.inspector.
    return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")


class _Parser:
    """Recursive descent over the token kinds; every rule returns an upper bound of
    the depth of the ANTLR parse tree it corresponds to (see MAX_TREE_DEPTH)."""

    __slots__ = ("kinds", "texts", "pos", "nesting", "errors", "crash", "tree_depth")

    def __init__(self, kinds: list[str], texts: list[str]) -> None:
        self.kinds = kinds
        self.texts = texts
        self.pos = 0
        self.nesting = 0
        self.errors = False  # semantic error (stix2patterns reports it after a clean parse)
        self.crash = False  # stix2patterns' inspector would raise instead
        self.tree_depth = 0

    def expect(self, kind: str) -> str:
        pos = self.pos
        if self.kinds[pos] != kind:
            raise _Reject
        self.pos = pos + 1
        return self.texts[pos]

    def pattern(self) -> int:
        depth = self.observation_expressions()
        if self.kinds[self.pos] != _EOF:
            raise _Reject
        return depth + 1

    # A left-associative chain "x OP x OP x" of k operators is a left-leaning tree
    # of depth at most k + 1 + (deepest operand).

    def observation_expressions(self) -> int:
        """obsOr (FOLLOWEDBY obsOr)*, obsOr: obsAnd (OR obsAnd)*, obsAnd: obs (AND obs)*"""
        self.nesting += 1
        if self.nesting > _MAX_NESTING:
            raise _Unsure
        kinds = self.kinds
        n_followedby = or_depth = 0
        while True:
            n_or = and_depth = 0
            while True:
                n_and = obs_depth = 0
                while True:
                    depth = self.observation_expression()
                    if depth > obs_depth:
                        obs_depth = depth
                    if kinds[self.pos] != "AND":
                        break
                    self.pos += 1
                    n_and += 1
                and_depth = max(and_depth, obs_depth + n_and + 1)
                if kinds[self.pos] != "OR":
                    break
                self.pos += 1
                n_or += 1
            or_depth = max(or_depth, and_depth + n_or + 1)
            if kinds[self.pos] != "FOLLOWEDBY":
                break
            self.pos += 1
            n_followedby += 1
        self.nesting -= 1
        return or_depth + n_followedby + 1

    def observation_expression(self) -> int:
        kinds = self.kinds
        kind = kinds[self.pos]
        if kind == "[":
            self.pos += 1
            depth = self.comparison_expression()
            self.expect("]")
            simple = True
        elif kind == "(":
            self.pos += 1
            depth = self.observation_expressions()
            self.expect(")")
            simple = False
        else:
            raise _Reject
        depth += 1
        seen = set()
        while True:
            kind = kinds[self.pos]
            if kind == "START":
                self.pos += 1
                self.expect("ts")
                self.expect("STOP")
                self.expect("ts")
            elif kind == "WITHIN":
                self.pos += 1
                if kinds[self.pos] not in ("int", "float"):
                    raise _Reject
                self.pos += 1
                self.expect("SECONDS")
            elif kind == "REPEATS":
                self.pos += 1
                self.expect("int")
                self.expect("TIMES")
            else:
                return depth
            depth += 1
            if simple:
                if kind in seen:
                    self.errors = True  # DuplicateQualifierTypeError
                seen.add(kind)

    def comparison_expression(self) -> int:
        """cmpAnd (OR cmpAnd)*, cmpAnd: propTest (AND propTest)*"""
        self.nesting += 1
        if self.nesting > _MAX_NESTING:
            raise _Unsure
        kinds = self.kinds
        n_or = and_depth = 0
        while True:
            n_and = prop_depth = 0
            while True:
                depth = self.prop_test()
                if depth > prop_depth:
                    prop_depth = depth
                if kinds[self.pos] != "AND":
                    break
                self.pos += 1
                n_and += 1
            and_depth = max(and_depth, prop_depth + n_and + 1)
            if kinds[self.pos] != "OR":
                break
            self.pos += 1
            n_or += 1
        self.nesting -= 1
        return and_depth + n_or + 1

    def prop_test(self) -> int:
        kinds = self.kinds
        kind = kinds[self.pos]
        if kind == "(":
            self.pos += 1
            depth = self.comparison_expression()
            self.expect(")")
            return depth + 1
        if kind == "NOT" or kind == "EXISTS":
            if kind == "NOT":
                self.pos += 1
            self.expect("EXISTS")
            return self.object_path()[1] + 1  # EXISTS records no comparison to check
        path, depth = self.object_path()
        pos = self.pos
        if kinds[pos] == "NOT":
            pos += 1
        op = kinds[pos]
        pos += 1
        self.pos = pos
        kind = kinds[pos]
        if op == "=" or op == "!=":
            if kind not in _PRIMITIVE:
                raise _Reject
            self.pos = pos + 1
            value = self.texts[pos]
        elif op == "<":
            if kind not in _ORDERABLE:
                raise _Reject
            self.pos = pos + 1
            value = self.texts[pos]
        elif op in _STRING_OPS:
            value = self.expect("str")
        elif op == "IN":
            value = self.set_literal()
        else:
            raise _Reject
        if "hashes" in path:
            self.check_hash(path, value)
        # the literal side is at most setLiteral > primitiveLiteral > orderableLiteral > token
        return (depth if depth > 4 else 4) + 1

    def set_literal(self) -> str:
        """Parse a set literal; return its text as ANTLR's getText() gives it."""
        self.expect("(")
        kinds = self.kinds
        texts = self.texts
        if kinds[self.pos] == ")":
            self.pos += 1
            return "()"
        start = self.pos
        while True:
            if kinds[self.pos] not in _PRIMITIVE:
                raise _Reject
            self.pos += 1
            if kinds[self.pos] != ",":
                break
            self.pos += 1
        self.expect(")")
        return "(" + "".join(texts[start:self.pos - 1]) + ")"

    def object_path(self) -> tuple[list, int]:
        """Parse an object path; return its components (as stix2patterns' inspector
        lists them, None standing for [*]) and its parse tree depth."""
        kinds = self.kinds
        texts = self.texts
        pos = self.pos
        if kinds[pos] not in ("id", "idh") or kinds[pos + 1] != ":":
            raise _Reject
        kind = kinds[pos + 2]
        if kind == "id":
            first = texts[pos + 2]
        elif kind == "str":
            first = _unquote(texts[pos + 2])
        else:
            raise _Reject
        pos += 3
        path: list = [first]
        while True:
            kind = kinds[pos]
            if kind == ".":
                kind = kinds[pos + 1]
                if kind == "id":
                    path.append(texts[pos + 1])
                elif kind == "str":
                    path.append(_unquote(texts[pos + 1]))
                else:
                    raise _Reject
                pos += 2
            elif kind == "[":
                kind = kinds[pos + 1]
                if kind == "int":
                    try:
                        path.append(int(texts[pos + 1]))
                    except ValueError:  # over sys.get_int_max_str_digits(): so does theirs
                        self.crash = True
                        path.append(0)
                elif kind == "*":
                    path.append(None)  # INDEX_STAR
                elif kind == "-int":
                    # stix2patterns' inspector calls int() on a missing IntPosLiteral
                    self.crash = True
                    path.append(0)
                else:
                    raise _Reject
                if kinds[pos + 2] != "]":
                    raise _Reject
                pos += 3
            else:
                break
        self.pos = pos
        # objectPath > objectPathComponent (a left-leaning chain of steps) > step > token
        return path, len(path) + 2

    def check_hash(self, path: list, value: str) -> None:
        """stix2patterns.v21.object_validator.verify_object for one comparison."""
        selector = path[-1]
        if selector is None:
            return
        if isinstance(selector, int):
            self.crash = True  # int has no .upper()
            return
        matcher = _HASH_RES.get(selector.upper().replace("-", "").replace("'", ""))
        if matcher is not None and not matcher(value.replace("'", "")):
            self.errors = True


def _brackets_check(pattern: str) -> bool:
    # stix2patterns.helpers.brackets_check, for a non-empty string.
    for c in pattern:
        if c != "(" and not c.isspace():
            break
    return c == "["


def _parse(pattern: str) -> _Parser:
    """Tokenize and parse; raise _Reject on a syntax error, _Unsure on deep nesting."""
    parser = _Parser(*_tokenize(pattern))
    parser.tree_depth = parser.pattern()
    return parser


# The commonest pattern by far, one equality test on a string, "[ipv4-addr:value =
# '198.51.100.7']", recognised by one regex.  Every match is a token sequence the parser
# above accepts: "[" id ":" id ("." id)* "=" str "]" (the type spelled as an identifier, the
# property names without hyphens, at most one space around "=", a string token of the lexer
# above), no keyword among the names ("true" and "false" are the only lower-case ones), no
# "hashes" component (so no hash check), a shallow tree and a leading "[".
_SIMPLE_RE = re.compile(
    r"\[([a-z][a-z0-9]*+(?:-[a-z0-9]++)*+):([a-z_][a-z0-9_]*+(?:\.[a-z_][a-z0-9_]*+)*+)"
    r" ?= ?'(?:[^'\\]++|\\['\\])*+'\]")
_NOT_SIMPLE = frozenset({"true", "false", "hashes"})


def _simple(pattern: str) -> bool:
    m = _SIMPLE_RE.fullmatch(pattern)
    if m is None:
        return False
    object_type, path = m.groups()
    return object_type not in _NOT_SIMPLE and _NOT_SIMPLE.isdisjoint(path.split("."))


def check(pattern: str, version: str | None = "2.1") -> bool | None:
    """Predict stix2's verdict on an Indicator ``pattern`` (pattern_type 'stix').

    True: certainly valid for stix2 (the Indicator with pattern_type 'stix' and
    this pattern_version would be accepted as far as the pattern goes);
    False: certainly invalid; None: not sure (the caller falls back to
    stix2patterns).
    """
    # stix2 replaces a missing/empty pattern_version by '2.1' (for a non-empty
    # pattern); any other version is validated with the 2.0 grammar.
    if version not in (None, "", "2.1") or not isinstance(pattern, str) or not pattern:
        return None
    if _simple(pattern):
        return True
    try:
        parser = _parse(pattern)
    except _Reject:
        return False
    except (_Unsure, RecursionError):
        return None
    if parser.crash or parser.tree_depth > MAX_TREE_DEPTH:
        return None
    if parser.errors or not _brackets_check(pattern):
        return False
    return True
