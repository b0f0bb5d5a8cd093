"""alliance.stix.fastpattern against the real validator (stix2 3.0.2 / stix2-patterns 2.1.2).

The reference verdict is whether stix2.parse accepts a minimal Indicator carrying the pattern;
most tests call the function it uses, stix2patterns.validator.run_validator, directly (same
verdict, much faster; test_reference_shortcut_agrees_with_stix2_parse checks that). A crash of
the reference counts as a rejection. Soundness: fast True => accepted, fast False => rejected;
fast None (fall back to stix2patterns) is always safe, but is only accepted here where
stix2patterns crashes or the parse tree is too deep, so that the fast path cannot silently
degrade to "always None". FASTPATTERN_EXAMPLES=20000 runs the hypothesis tests longer."""
import base64
import json
import os
import random
import re
import sys
import uuid
from functools import cache

import pytest
import stix2
from antlr4 import CommonTokenStream, InputStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stix2patterns.v21.grammars.STIXPatternLexer import STIXPatternLexer
from stix2patterns.v21.grammars.STIXPatternParser import STIXPatternParser
from stix2patterns.validator import run_validator

from alliance.stix.fastpattern import MAX_TREE_DEPTH, _parse, check
from alliance.stix.patternlexer import _tokenize
from alliance.stix.patternparser import _Reject, _Unsure
from tests.notes.helpers import CORPUS

pytestmark = pytest.mark.nodb  # no database: the SQLite pass runs them once

EXAMPLES = int(os.environ.get("FASTPATTERN_EXAMPLES", "2000"))
STAMP = "2024-01-01T00:00:00.000Z"


# Pure unit tests: replace the suite's autouse app/database fixtures by no-ops.
@pytest.fixture(scope="module", autouse=True)
def db():
    yield None


@pytest.fixture(scope="module", autouse=True)
def _cheap_password_hashes():
    yield None


def indicator(pattern, version=None) -> dict:
    obj = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
           "created": STAMP, "modified": STAMP, "valid_from": STAMP, "pattern_type": "stix",
           "pattern": pattern}
    if version is not None:
        obj["pattern_version"] = version
    return obj


def stix2_accepts(pattern, version=None) -> bool:
    try:
        stix2.parse(indicator(pattern, version), allow_custom=True, version="2.1")
    except Exception:  # stix2patterns may also crash (AttributeError...): a rejection too
        return False
    return True


def reference(pattern) -> bool | str:
    """True/False as stix2patterns (2.1) decides, or "crash"."""
    try:
        return not run_validator(pattern, "2.1")
    except Exception:
        return "crash"


def too_deep(pattern) -> bool:
    """The fast parser's estimate of the ANTLR parse tree depth is over the limit."""
    try:
        return _parse(pattern).tree_depth > MAX_TREE_DEPTH
    except _Unsure:
        return True
    except _Reject:
        return False


def assert_agrees(pattern):
    """Soundness, and no None unless stix2patterns crashes or the tree is too deep."""
    fast = check(pattern)
    ref = reference(pattern)
    if fast is True:
        assert ref is True, f"fast accepts, stix2patterns does not: {pattern!r}"
    elif fast is False:
        assert ref is not True, f"fast rejects, stix2patterns accepts: {pattern!r}"
    else:
        assert ref == "crash" or too_deep(pattern), f"needless None: {pattern!r}"


# --- the shared corpus ------------------------------------------------------------------------

def _walk(node, found):
    if isinstance(node, dict):
        if node.get("type") == "indicator" and isinstance(node.get("pattern"), str):
            found.append((node["pattern"], node.get("pattern_version")))
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


@cache
def corpus_patterns() -> tuple:
    found: list = []
    for path in sorted(CORPUS.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue  # invalid/validator__invalid_braces.json is not JSON
        _walk(data, found)
    return tuple(found)


def test_corpus_is_there():
    patterns = corpus_patterns()
    assert len(patterns) >= 30
    assert any(version == "2.1" for _, version in patterns)


def test_corpus_against_stix2_parse():
    accepted = decided = 0
    for pattern, version in corpus_patterns():
        fast = check(pattern, version)
        ok = stix2_accepts(pattern, version)
        if fast is not None:
            assert fast == ok, pattern
        accepted += ok
        decided += ok and fast is True
    assert accepted >= 30
    assert decided >= 0.95 * accepted  # the fast path really answers the common shapes


def test_corpus_invalid_patterns_are_refused():
    refused = [p for p, v in corpus_patterns() if not stix2_accepts(p, v)]
    assert any("INVALID-CONDITION" in p for p in refused)
    assert all(check(p) is False for p in refused)


# --- hand-written tricky patterns -------------------------------------------------------------

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"

VALID = [
    "[ipv4-addr:value = '1.2.3.4']",
    "[ipv4-addr:value='1.2.3.4']",
    "[ipv4-addr:value = '1' ]",
    "  (( [ipv4-addr:value = '1.2.3.4'] ))  ",
    "\n[ipv4-addr:value\t=\r\n'1.2.3.4']\n",
    "\xa0[ipv4-addr:value\u3000=\u2028'1']",
    f"[file:hashes.'SHA-256' = '{SHA256}']",
    f"[file:hashes.MD5 = '{MD5}']",
    f"[file:hashes.md5 = '{MD5.upper()}']",
    f"[file:hashes.'SHA\\'256' = '{SHA256}']",  # quotes are dropped from the hash name
    f"[file:hashes.MD6 = '{MD5}xyz']",  # stix2patterns' MD6 regex only anchors its first branch
    "[file:hashes.'x-custom' = 'anything']",
    "[file:hashes.SHA_256 = 'nope']",  # unknown hash names are not checked
    "[file:hashes[*] = 'x']",
    "[EXISTS file:hashes.MD5]",
    "[url:value = 'http://example.com/'] OR [domain-name:value = 'example.com']",
    "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_port = 443]",
    "[network-traffic:dst_port = +443 AND network-traffic:src_port != -1]",
    "[file:name MATCHES '^x']",
    "[file:name NOT MATCHES '^x' OR file:name LIKE 'a%' OR file:name NOT LIKE 'b_']",
    "[ipv4-addr:value ISSUBSET '10.0.0.0/8' AND ipv4-addr:value NOT ISSUPERSET '10.0.0.0/24']",
    "[a:b = 1] WITHIN 5 SECONDS",
    "[a:b = 1] WITHIN 0 SECONDS",
    "[a:b = 1] WITHIN 2.5 SECONDS",
    "[a:b = 1] WITHIN .5 SECONDS",
    "[a:b = 1] WITHIN +5 SECONDS",
    "[a:b = 1] REPEATS 0 TIMES",
    "[a:b = 1] REPEATS 5 TIMES WITHIN 10 SECONDS",
    "[a:b = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-01-02T00:00:00.123Z'",
    "[a:b = 1] START t'2024-02-31T23:59:60Z' STOP t'2023-01-01T00:00:00Z'",  # no calendar check
    "([a:b = 1]) WITHIN 5 SECONDS WITHIN 6 SECONDS",  # duplicates allowed on a group
    "[a:b = 1] FOLLOWEDBY ([a:c = 2] OR [a:d = 3]) REPEATS 2 TIMES AND [x:y = 'z']",
    "[a:b = 1 AND (a:c = 2 OR (a:d = 3 AND a:e = 4))]",
    "[a:b NOT = 1]",
    "[a:b NOT > 1 AND a:c <= 2.5 AND a:d >= -.5 AND a:e < h'ff' AND a:f > t'2024-01-01T00:00:00Z']",
    "[a:b == 1 AND a:c <> 2]",
    "[a:b = true AND a:c != false]",
    "[a:b IN ()]",
    "[a:b NOT IN (1, -2, 3.5, 'x', true, h'ab', b'AAAA', t'2024-01-01T00:00:00Z')]",
    "[a:b = b'AAA=' AND a:c = b'AA==' AND a:d = b'AAAAAAAA' AND a:e = h'']",
    "[a:'x-y'.'z'[0].w[*][+1] = 1]",
    "[x-foo:'quoted name' = 'x']",
    "[windows-registry-key:values[*].name = 'x']",
    "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
    "[a-b_c:x = 1]",
    "[_x:_y = 1]",
    "[AND-x:y = 1]",
    "[ANDx:ORy = 1]",
    "[a:b = 'x\\'y\\\\z']",
    "[a:b = 'é☃\U0001f600\x00']",
    "[a:b = 'multi\nline']",
    "[a:b = 1] /* trailing comment */",
    "[a:b = 1] // line comment",
    "[a:b /* inside */ = 1]",
    "[a:b = 1] AND [a:b = 1] OR [a:b = 1] FOLLOWEDBY [a:b = 1]",
    "[a:b = " + "1" * 5000 + "]",
    " OR ".join(f"[ipv4-addr:value = '10.0.{i // 256}.{i % 256}']" for i in range(300)),
    "[" + " AND ".join(f"file:name = 'f{i}'" for i in range(300)) + "]",
    "(" * 25 + "[a:b = 1]" + ")" * 25,
    "[" + "(" * 25 + "a:b = 1" + ")" * 25 + "]",
]

INVALID = [
    "", " ", "\n", "(", "()", "[]", "[ ]", "[a:b = 1", "a:b = 1]", "[a:b = 1]]", "[[a:b = 1]]",
    "([a:b = 1]", "[a:b = 1])", "[(a:b = 1]", "[a:b = (1)]",
    "[a:b = 1] and [a:b = 2]", "[a:b = 1 and a:c = 2]", "[a:b = 1] or [a:c = 2]",
    "[a:b = 1] followedby [a:c = 2]", "[a:b matches 'x']", "[a:b = TRUE]", "[a:b = True]",
    "[a:b = 1] within 5 seconds", "[a:b = 1] WITHIN 5 seconds",
    "[a:b = '1]", "[a:b = 1']", "[a:b = \"1\"]", "[a:b = 'x\\y']", "[a:b = 'x\\']",
    "[a:b = 1] WITHIN -5 SECONDS", "[a:b = 1] WITHIN 5", "[a:b = 1] WITHIN SECONDS",
    "[a:b = 1] REPEATS -1 TIMES", "[a:b = 1] REPEATS 1.5 TIMES", "[a:b = 1] REPEATS 2",
    "[a:b = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS", "[a:b = 1] REPEATS 2 TIMES REPEATS 3 TIMES",
    "[a:b = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-01-01T00:00:00Z' "
    "START t'2024-01-01T00:00:00Z' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-13-01T00:00:00Z' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-32T00:00:00Z' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-01T24:00:00Z' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-01T00:00:61Z' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-01 00:00:00Z' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-01T00:00:00' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-01T00:00:00+00:00' STOP t'2024-01-01T00:00:00Z'",
    "[a:b = 1] START '2024-01-01T00:00:00Z' STOP '2024-01-01T00:00:00Z'",
    "[a:b = 1] START t'2024-01-01T00:00:00Z'",
    "[a:b = h'abc']", "[a:b = h'zz']", "[a:b = H'ab']", "[a:b = b'']", "[a:b = b'AAA']",
    "[a:b = b'A===']", "[a:b = b'****']", "[a:b = t'2024']",
    "[a:b = 01]", "[a:b = 1.]", "[a:b = 1e5]", "[a:b = --1]", "[a:b = 1.2.3]",
    "[a:b > true]", "[a:b LIKE 1]", "[a:b MATCHES h'ab']", "[a:b IN 'x']", "[a:b IN (1,)]",
    "[a:b IN ((1))]", "[a:b = ()]", "[a:b EXISTS]", "[EXISTS a]", "[NOT a:b = 1]",
    "[a:b NOT NOT = 1]", "[a:b ! = 1]", "[a:b =! 1]", "[a:b === 1]",
    "[a:x-y = 1]", "[a:b.x-y = 1]", "[a:b.0 = 1]", "[a:b. = 1]", "[a:b[] = 1]", "[a:b[x] = 1]",
    "[a:b[1.5] = 1]", "[a:' = 1]", "[:b = 1]", "[a: = 1]", "[a = 1]",
    "[a:b:c = 1]", "['a':b = 1]", "[a.b:c = 1]", "[1a:b = 1]", "[é:b = 1]", "[a:é = 1]",
    "[x:IN = 1]", "[x:true = 1]", "[AND:x = 1]", "[x:LAST = 1]", "[x:a.LAST = 1]", "[x:a.true = 1]",
    "[x:EXISTS = 1]", "[LAST:x = 1]",
    "[a:b = 1] [a:c = 2]", "[a:b = 1] AND", "AND [a:b = 1]", "[a:b = 1] AND AND [a:c = 2]",
    "[a:b = 1 AND]", "[a:b = 1 OR OR a:c = 2]", "[a:b = 1] FOLLOWEDBY", "[a:b = 1] x",
    "[a:b = 1];", "[a:b = 1]\u200b", "\u200b[a:b = 1]", "\x1c[a:b = 1]", "[a:b = 1]\x00",
    "/* leading comment */ [a:b = 1]", "(/* c */[a:b = 1])", "[a:b = 1] /* unterminated",
    "// x\n[a:b = 1]", "[a:b = 1] / [a:c = 2]",
    f"[file:hashes.'SHA-256' = '{SHA256[:-1]}']", f"[file:hashes.MD5 = '{MD5}0']",
    f"[file:hashes.'SHA-1' = '{MD5}']", f"[file:hashes.MD5 MATCHES '^{MD5[:4]}']",
    f"[file:hashes.MD5 IN ('{MD5}')]", f"[file:hashes.MD5 = h'{MD5}']",
    f"[file:x.hashes.'sha-256' > '{MD5}']", f"[file:hashes.MD5 = '{MD5}' OR file:hashes.SHA1 = 'x']",
    "[file:hashes.SSDEEP = '3:a b']",
    "(" * 25 + "[a:b = 1]" + ")" * 24,
    " OR ".join(["[a:b = 1]"] * 1000) + " OR",  # a syntax error is reported, no deep walk
]

# stix2patterns raises (AttributeError) instead of reporting an error: fast says None.
CRASHES = ["[file:x[-1] = 'x']", "[file:hashes[0] = 'x']", "[EXISTS a:b[-2]]",
           "[a:b[" + "1" * 5000 + "] = 1]"]  # int() refuses over 4300 digits


@pytest.mark.parametrize("pattern", VALID)
def test_valid_tricky(pattern):
    assert reference(pattern) is True
    assert check(pattern) is True


@pytest.mark.parametrize("pattern", INVALID)
def test_invalid_tricky(pattern):
    assert reference(pattern) is not True
    assert check(pattern) is (None if pattern == "" else False)


@pytest.mark.parametrize("pattern", CRASHES)
def test_reference_crashes_give_none(pattern):
    assert reference(pattern) == "crash"
    assert not stix2_accepts(pattern)
    assert check(pattern) is None


def test_deep_trees_fall_back():
    """stix2patterns recurses once per parse tree level: 1,000 ORs or 300 nested parentheses
    make it raise RecursionError; a little less works or not depending on the caller's stack."""
    thousand_ors = " OR ".join(f"[ipv4-addr:value = '10.0.{i // 256}.{i % 256}']" for i in range(1000))
    assert reference(thousand_ors) == "crash"
    assert not stix2_accepts(thousand_ors)
    assert check(thousand_ors) is None
    deep = "(" * 300 + "[a:b = 1]" + ")" * 300
    assert reference(deep) == "crash"
    assert check(deep) is None
    assert check("(" * 10_000 + "[a:b = 1]" + ")" * 10_000) is None
    borderline = " OR ".join(["[a:b = 1]"] * 600)
    assert check(borderline) is None
    assert reference(borderline) is True  # from pytest's stack; deeper callers crash
    assert at_stack_depth(500, lambda: reference(borderline)) == "crash"
    # a malformed deep pattern is refused before the limit matters
    assert check("(" * 10_000 + "[a:b = 1") in (None, False)
    assert check("[a:b = 1]" + " OR [" * 1000) is False


def at_stack_depth(frames, func):
    """Call func() with (about) this many frames on the Python stack."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return _nest(frames - depth, func)


def _nest(frames, func):
    return func() if frames <= 0 else _nest(frames - 1, func)


def antlr_tree_depth(pattern) -> int:
    lexer = STIXPatternLexer(InputStream(pattern))
    lexer.removeErrorListeners()
    parser = STIXPatternParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    deepest, stack = 0, [(parser.pattern(), 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((node.getChild(i), depth + 1) for i in range(node.getChildCount()))
    return deepest


LIMIT_SHAPES = {
    "observation OR": lambda n: " OR ".join(["[a:b = 1]"] * n),
    "comparison AND": lambda n: "[" + " AND ".join(["a:b IN (1, 2)"] * n) + "]",
    "path steps": lambda n: "[a:b" + ".c[*]" * (n // 2) + " = 1]",
    "qualifiers": lambda n: "([a:b = 1])" + " REPEATS 2 TIMES" * n,
    "observation parentheses": lambda n: "(" * (n // 4) + "[a:b = 1]" + ")" * (n // 4),
    "comparison parentheses": lambda n: "[" + "(" * (n // 3) + "a:b = 1" + ")" * (n // 3) + "]",
}


@pytest.mark.parametrize("shape", LIMIT_SHAPES)
def test_patterns_at_the_depth_limit_leave_headroom(shape):
    """Whatever check() accepts, stix2patterns validates even when called 550 frames deep."""
    make = LIMIT_SHAPES[shape]
    n = next(n for n in range(10, 500) if too_deep(make(n + 1)))
    pattern = make(n)
    assert check(pattern) is True
    assert antlr_tree_depth(pattern) <= _parse(pattern).tree_depth <= MAX_TREE_DEPTH
    assert at_stack_depth(550, lambda: reference(pattern)) is True


def test_reference_shortcut_agrees_with_stix2_parse():
    for pattern in VALID[:20] + INVALID[:40] + CRASHES:
        assert stix2_accepts(pattern) == (reference(pattern) is True), pattern


def test_pattern_version():
    pattern = "[ipv4-addr:value = '1.2.3.4']"
    assert check(pattern, None) is True and stix2_accepts(pattern, None)
    assert check(pattern, "2.1") is True and stix2_accepts(pattern, "2.1")
    assert check(pattern, "") is True and stix2_accepts(pattern, "")  # stix2 substitutes '2.1'
    for version in ("2.0", "2.2", "1.0", "v2.1", " 2.1"):
        assert check(pattern, version) is None  # stix2 then uses the 2.0 grammar
    # the 2.0 grammar really differs (no EXISTS)
    assert stix2_accepts("[EXISTS a:b]", "2.1") and check("[EXISTS a:b]") is True
    assert not stix2_accepts("[EXISTS a:b]", "2.0")
    assert check("[EXISTS a:b]", "2.0") is None


def test_non_string_input():
    assert check(None) is None
    assert check(b"[a:b = 1]") is None


# --- the lexer, token by token, against the ANTLR lexer ---------------------------------------

_ANTLR_KIND = {
    "IntNegLiteral": "-int", "IntPosLiteral": "int", "FloatNegLiteral": "-float",
    "FloatPosLiteral": "float", "HexLiteral": "hex", "BinaryLiteral": "bin", "StringLiteral": "str",
    "BoolLiteral": "bool", "TimestampLiteral": "ts", "IdentifierWithoutHyphen": "id",
    "IdentifierWithHyphen": "idh", "EQ": "=", "NEQ": "!=", "LT": "<", "LE": "<", "GT": "<",
    "GE": "<", "COLON": ":", "DOT": ".", "COMMA": ",", "RPAREN": ")", "LPAREN": "(",
    "RBRACK": "]", "LBRACK": "[", "ASTERISK": "*",
}


KEYWORDS = {"AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET", "EXISTS",
            "LAST", "IN", "START", "STOP", "SECONDS", "WITHIN", "REPEATS", "TIMES"}


def antlr_tokens(text):
    lexer = STIXPatternLexer(InputStream(text))
    lexer.removeErrorListeners()
    out = []
    while (token := lexer.nextToken()).type != -1:
        name = STIXPatternLexer.symbolicNames[token.type]
        out.append((_ANTLR_KIND.get(name, name if name in KEYWORDS else "bad"), token.text))
    return out


def fast_tokens(text):
    kinds, texts = _tokenize(text)
    return [(k, t) for k, t in zip(kinds, texts, strict=True) if k != "eof"]


LEX_PIECES = [
    "t'", "h'", "b'", "'", "\\", "\\'", "\\\\", "2024-01-31T23:59:60Z", "2024-13-01T00:00:00.5Z",
    "-", "+", ".", "0", "1", "9", "00", "12", "AB", "Az", "==", "=", "!", "<", ">", "/", "*", "/*",
    "*/", "//", "\n", " ", "\t", "\xa0", "\u200b", "\x1c", "AND", "OR", "true", "false", "TRUE",
    "ab", "_x", "x-y", "é", "(", ")", "[", "]", ":", ",", "^", '"', "EXISTS", "LAST", "t", "h", "b",
    "T", "Z", ":00", "==", "\U0001f600",
]


def same_tokens(fast, antlr) -> bool:
    """Equal, except that the fast lexer's final "rest" token (an unterminated string or
    comment opener and all that follows) stands for ANTLR's QUOTE or DIVIDE token there
    and whatever ANTLR makes of the remaining input."""
    if fast and fast[-1][0] == "bad" and fast[-1][1][0] in "'/" and fast[-1][1] != "/":
        n = len(fast) - 1
        return antlr[:n] == fast[:n] and antlr[n] == ("bad", fast[-1][1][0])
    return fast == antlr


def test_lexer_matches_antlr():
    rng = random.Random(20240101)
    alphabet = LEX_PIECES + [chr(c) for c in range(128)]
    for _ in range(6000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        assert same_tokens(fast_tokens(text), antlr_tokens(text)), text


@pytest.mark.parametrize("text", [
    "[a:b = " + "0" * 100_000 + "]", "[a:b = '" + "\\'" * 50_000, "[a:b = 1]" + " /* x" * 20_000,
    "[a:b = " + "h'" * 50_000, "[a:b = " + "0." * 50_000, "/*" * 50_000,
    "[" + "a:b = 1 AND " * 20_000 + "a:b = 1]", "[a:b" + "[0]" * 30_000 + " = 1]",
])
def test_pathological_inputs_stay_linear(text, monkeypatch):
    """ANTLR rescans from every unterminated quote or "/*" (quadratic); the fast lexer does
    not: it reads the input in one pass of one regular expression (one findall, whose
    tokens are what the parser walks: no more of them than characters), and never starts
    ANTLR's lexer. Counted rather than timed."""
    import alliance.stix.patternlexer as patternlexer

    passes, started = [], []

    class Counting:
        def __init__(self, regex):
            self.regex = regex

        def findall(self, string):
            found = self.regex.findall(string)
            passes.append(len(found))
            return found

    monkeypatch.setattr(patternlexer, "_TOKEN_RE", Counting(patternlexer._TOKEN_RE))
    monkeypatch.setattr(STIXPatternLexer, "__init__", lambda *a, **k: started.append(a))
    assert check(text) in (False, None)
    assert len(passes) == 1 and passes[0] <= len(text) + 1
    assert started == []


# --- generated patterns (hypothesis) ----------------------------------------------------------

SPACE = st.sampled_from(["", " ", " ", " ", "  ", "\n", "\t", " /* c */ "])
OBJECT_TYPES = ["ipv4-addr", "ipv6-addr", "file", "url", "domain-name", "network-traffic",
                "email-message", "x509-certificate", "x-foo", "a", "_x", "x_y-z", "process"]
PROPERTIES = ["value", "name", "dst_ref", "type", "dst_port", "protocols", "resolves_to_refs",
              "extensions", "x_foo", "size", "'x-foo'", "'SHA-256'", "'a b'", "'it\\'s'"]
# hash name in a path -> hex digits its regex wants (0: SSDEEP-like text, None: not checked)
HASH_NAMES = {"MD5": 32, "md5": 32, "'SHA-256'": 64, "SHA256": 64, "'SHA-1'": 40, "SHA1": 40,
              "'SHA3-256'": 64, "SSDEEP": 0, "MD6": 32, "'SHA-512'": 128, "'x-custom'": None,
              "WHIRLPOOL": 128}
KEYWORD_SOUP = ["AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET",
                "EXISTS", "IN", "START", "STOP", "WITHIN", "SECONDS", "REPEATS", "TIMES", "LAST",
                "true", "false", "and", "or", "within"]

string_body = st.lists(
    st.sampled_from(list("abcXYZ019 .:/-_%^$*?[](){}") + ["\\\\", "\\'", "é", "\n", "☃"]),
    max_size=12,
).map("".join)


def hexes(length):
    return st.tuples(st.binary(min_size=length // 2, max_size=length // 2), st.booleans()).map(
        lambda t: t[0].hex().upper() if t[1] else t[0].hex())


@st.composite
def timestamps(draw):
    date = (f"{draw(st.integers(0, 9999)):04d}-{draw(st.integers(1, 12)):02d}-"
            f"{draw(st.integers(1, 31)):02d}")
    time_ = (f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:"
             f"{draw(st.integers(0, 60)):02d}")
    frac = draw(st.sampled_from(["", ".0", ".123", ".123456789"]))
    return f"t'{date}T{time_}{frac}Z'"


base64s = st.binary(min_size=1, max_size=9).map(
    lambda raw: "b'" + base64.b64encode(raw).decode() + "'")

literals = st.one_of(
    string_body.map(lambda s: f"'{s}'"),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["+7", "0", "-0", "1.5", "-.5", "+.25", "0.0", "007.5"]),
    st.sampled_from(["true", "false"]),
    st.integers(0, 6).flatmap(lambda n: hexes(2 * n)).map(lambda h: f"h'{h}'"),
    base64s,
    timestamps(),
)


@st.composite
def object_paths(draw):
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(sorted(HASH_NAMES)))
        return f"file:hashes.{name}", name
    path = draw(st.sampled_from(OBJECT_TYPES)) + ":" + draw(st.sampled_from(PROPERTIES))
    for _ in range(draw(st.integers(0, 3))):
        step = draw(st.integers(0, 3))
        if step == 0:
            path += "." + draw(st.sampled_from(PROPERTIES))
        elif step == 1:
            path += f"[{draw(st.sampled_from(['*', '0', '1', '+2', '10']))}]"
        else:
            path += "." + draw(st.sampled_from(["value", "name", "type", "hashes"]))
    return path, None


@st.composite
def comparisons(draw):
    path, hash_name = draw(object_paths())
    sp = draw(SPACE)
    if draw(st.integers(0, 12)) == 0:
        return f"{draw(st.sampled_from(['', 'NOT ']))}EXISTS {path}"
    if hash_name is not None and draw(st.integers(0, 4)):
        wanted = HASH_NAMES[hash_name] or 0
        length = draw(st.sampled_from([wanted, wanted, wanted, 40, 0]))
        value = draw(hexes(length)) if length else "3:abc:def"
        return f"{path}{sp}={sp}'{value}'"
    neg = draw(st.sampled_from(["", "", "", "NOT "]))
    op = draw(st.sampled_from(["=", "=", "=", "!=", "==", "<>", "<", ">", "<=", ">=", "IN", "LIKE",
                               "MATCHES", "ISSUBSET", "ISSUPERSET"]))
    if op == "IN":
        items = draw(st.lists(literals, max_size=4))
        value = "(" + ",".join(f"{draw(SPACE)}{item}" for item in items) + ")"
    elif op in ("LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"):
        value = "'" + draw(string_body) + "'"
    elif op in ("<", ">", "<=", ">="):
        value = draw(literals.filter(lambda v: v not in ("true", "false")))
    else:
        value = draw(literals)
    return f"{path}{sp}{neg}{op}{sp}{value}"


def comparison_expressions(depth=2):
    leaf = comparisons()
    if depth == 0:
        return leaf
    inner = comparison_expressions(depth - 1)
    return st.one_of(
        leaf, leaf, leaf,
        st.tuples(inner, st.sampled_from([" AND ", " OR ", " AND\n"]), inner).map("".join),
        inner.map(lambda e: f"({e})"),
    )


qualifiers = st.one_of(
    st.sampled_from(["1", "5", "+3", "0", "2.5", ".5"]).map(lambda n: f" WITHIN {n} SECONDS"),
    st.sampled_from(["1", "2", "0", "+9"]).map(lambda n: f" REPEATS {n} TIMES"),
    st.tuples(timestamps(), timestamps()).map(lambda ts: f" START {ts[0]} STOP {ts[1]}"),
)


def observation_expressions(depth=2):
    simple = st.tuples(SPACE, comparison_expressions(), SPACE).map(lambda t: f"[{''.join(t)}]")
    if depth == 0:
        leaf = simple
    else:
        inner = observation_expressions(depth - 1)
        leaf = st.one_of(simple, simple, simple, inner.map(lambda e: f"({e})"),
                         st.tuples(inner, st.sampled_from([" AND ", " OR ", " FOLLOWEDBY "]),
                                   inner).map("".join))
    some_qualifiers = st.one_of(st.just(""), st.just(""), qualifiers,
                                st.tuples(qualifiers, qualifiers).map("".join))
    return st.tuples(leaf, some_qualifiers).map("".join)


patterns = observation_expressions()

INTERESTING = list("[]()'\\:.,=!<>-+*/ \n\x00é\"") + ["AND", "OR", "NOT", "h'", "t'", "b'", "/*"]


@st.composite
def mutated_patterns(draw):
    text = draw(patterns)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 5))
        pos = draw(st.integers(0, len(text)))
        if kind == 0 and text:  # delete a character
            pos = min(pos, len(text) - 1)
            text = text[:pos] + text[pos + 1:]
        elif kind == 1:  # insert something
            text = text[:pos] + draw(st.sampled_from(INTERESTING)) + text[pos:]
        elif kind == 2 and text:  # replace a character
            pos = min(pos, len(text) - 1)
            text = text[:pos] + draw(st.characters(codec="utf-8")) + text[pos + 1:]
        elif kind == 3:  # insert a keyword or literal token
            token = draw(st.one_of(st.sampled_from(KEYWORD_SOUP), literals))
            text = text[:pos] + " " + token + " " + text[pos:]
        else:  # delete or duplicate a token
            spans = [m.span() for m in re.finditer(r"\S+", text)]
            if spans:
                start, end = draw(st.sampled_from(spans))
                text = text[:start] + (text[start:end] * 2 if kind == 4 else "") + text[end:]
    return text


HYPOTHESIS = settings(max_examples=EXAMPLES, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@HYPOTHESIS
@given(patterns)
def test_generated_patterns(pattern):
    assert_agrees(pattern)
    if check(pattern) is True:
        assert antlr_tree_depth(pattern) <= _parse(pattern).tree_depth


@HYPOTHESIS
@given(mutated_patterns())
def test_mutated_patterns(pattern):
    assert_agrees(pattern)


@settings(max_examples=max(50, EXAMPLES // 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(patterns, mutated_patterns()))
def test_generated_against_stix2_parse(pattern):
    fast = check(pattern)
    if fast is not None:
        assert fast == stix2_accepts(pattern), pattern


def test_generated_patterns_are_mostly_valid():
    """The grammar strategy mostly produces patterns the reference accepts (a sanity check)."""
    rng = random.Random(7)
    seen = []

    @settings(max_examples=200, deadline=None, database=None)
    @given(patterns)
    def collect(pattern):
        seen.append(pattern)

    collect()
    sample = rng.sample(seen, min(100, len(seen)))
    accepted = sum(reference(p) is True for p in sample)
    assert accepted >= 0.5 * len(sample)


# --- speed ------------------------------------------------------------------------------------

def test_the_fast_check_never_starts_antlr(monkeypatch):
    """What makes it faster than stix2patterns (measured by bench/parsers.py), counted: on
    the corpus' patterns and generated ones it answers without building ANTLR's lexer or
    parser, which run_validator builds for every pattern."""
    items = [p for p, _ in corpus_patterns()]
    items += [f"[ipv4-addr:value = '10.{i % 256}.{i // 256 % 256}.{i * 7 % 256}']" for i in range(200)]
    started = []
    real_init = STIXPatternLexer.__init__

    def counting(self, *args, **kwargs):
        started.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(STIXPatternLexer, "__init__", counting)
    answered = [check(p) for p in items]
    assert sum(a is not None for a in answered) >= 0.9 * len(items)
    assert started == []
    run_validator(items[-1], "2.1")  # the counter counts
    assert started
