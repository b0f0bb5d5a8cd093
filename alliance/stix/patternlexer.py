"""The lexer of the fast pattern checker (fastpattern.py): one regular expression that
reproduces stix2-patterns' ANTLR lexer token for token, and the token kinds the parser
(patternparser.py) reads."""
from __future__ import annotations

import re

# One findall() returns the tokens: whitespace and comments are skipped
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
