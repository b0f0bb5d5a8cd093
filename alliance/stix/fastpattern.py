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

The lexer is patternlexer.py, the parser (and the checks after the parse) patternparser.py;
this module holds the contract, a shortcut for the commonest pattern, and :func:`check`.
"""

from __future__ import annotations

import re

from alliance.stix.patternlexer import _tokenize
from alliance.stix.patternparser import MAX_TREE_DEPTH, _Parser, _Reject, _Unsure

__all__ = ["MAX_TREE_DEPTH", "check"]


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
