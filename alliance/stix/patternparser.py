"""The parser of the fast pattern checker (fastpattern.py): recursive descent over the
tokens of patternlexer.py for the STIX 2.1 pattern grammar, with the checks stix2-patterns
makes after a clean parse (hash values, duplicate qualifiers) and a bound on the depth of
the parse tree stix2-patterns would build."""
from __future__ import annotations

import re

from stix2patterns.v21.object_validator import HASHES_REGEX

from alliance.stix.patternlexer import _EOF

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

_ORDERABLE = frozenset({"int", "-int", "float", "-float", "str", "bin", "hex", "ts"})
_PRIMITIVE = _ORDERABLE | {"bool"}
_STRING_OPS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})


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
                path.append(self.index_step(pos))
                pos += 3
            else:
                break
        self.pos = pos
        # objectPath > objectPathComponent (a left-leaning chain of steps) > step > token
        return path, len(path) + 2

    def index_step(self, pos: int) -> int | None:
        """The list index of the `[...]` step at `pos` as the inspector lists it (None for
        [*]); the step is three tokens."""
        kinds = self.kinds
        kind = kinds[pos + 1]
        if kinds[pos + 2] != "]" or kind not in ("int", "*", "-int"):
            raise _Reject
        if kind == "*":
            return None  # INDEX_STAR
        if kind == "int":
            try:
                return int(self.texts[pos + 1])
            except ValueError:  # over sys.get_int_max_str_digits(): so does theirs
                pass
        # "-int": stix2patterns' inspector calls int() on a missing IntPosLiteral
        self.crash = True
        return 0

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

