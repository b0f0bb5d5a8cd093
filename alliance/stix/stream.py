"""A bundle file read a part at a time (`alliance import`): its objects, PART_OBJECTS at a
time (a file of up to ONE_PART_BYTES in one part), each part parsed and checked against the
limits exactly as a posted envelope is (validation.parse_envelope: orjson, the limits walk,
NUL, integers beyond 64 bits), so a 100,000-object import never holds the whole bundle, nor
all its objects, at once.

The file is read as a stream of text. The standard library's JSON scanner
(JSONDecoder.raw_decode) finds where each object of the bundle's "objects" array ends; the
object's own text then goes to orjson with the rest of its part, as one envelope. A bundle
whose "type": "bundle" comes before its objects (as every STIX producer writes it) is
streamed; any other JSON (objects first, a lone object, not a bundle at all) is read whole
by validation.parse_bundle, with its answers."""
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import orjson

from alliance.stix.limits import StixLimits
from alliance.stix.problems import BundleRejected, Problem
from alliance.stix.validation import Parsed, parse_bundle, parse_envelope

PART_OBJECTS = 5000  # objects parsed and checked at once
# A file up to this size is one part: read again, a file of parts takes about 10% longer to
# import, and one of 16 MB parsed whole stays within about 100 MB.
ONE_PART_BYTES = 16 * 2**20
_BLOCK = 1 << 20  # characters read at once; doubled while one value does not fit
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class _NotStreamed(Exception):
    """The file is JSON of another shape than a bundle with its type first: read it whole."""


def _changed() -> BundleRejected:
    return BundleRejected([Problem("", "", "the file changed while it was imported; nothing "
                                           "was stored: import it again")], status_code=409)


class _Text:
    """The file's text from a position on, a block at a time: only the unread rest of the
    last block (and a value that does not fit in it) is held."""

    def __init__(self, handle) -> None:
        self.handle, self.text, self.pos = handle, "", 0
        self.read = 0  # characters of the file before `text`
        self._digest: hashlib.blake2b | None = None  # of the text read since `_mark`
        self._mark = 0

    def _more(self) -> bool:
        block = self.handle.read(max(_BLOCK, len(self.text) - self.pos))
        if not block:
            return False
        if self._digest is not None:
            self._digest.update(self.text[self._mark:self.pos].encode())
            self._mark = 0
        self.read += self.pos
        self.text, self.pos = self.text[self.pos:] + block, 0
        return True

    def span(self) -> bytes | None:
        """The digest of the text read since the last call (None the first time)."""
        done = None
        if self._digest is not None:
            self._digest.update(self.text[self._mark:self.pos].encode())
            done = self._digest.digest()
        self._digest, self._mark = hashlib.blake2b(digest_size=32), self.pos
        return done

    def peek(self) -> str:
        """The next character that is not white space ('' at the end)."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self._more():
                return self.text[self.pos:self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise BundleRejected([Problem("", "", f"not valid JSON (expected {char!r} at "
                                                  f"character {self.read + self.pos:,})")])
        self.pos += 1

    def value(self) -> tuple[object, str]:
        """The next JSON value: as Python and as its text."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue  # the value goes on in the next block
                raise BundleRejected([Problem("", "", f"not valid JSON ({exc.msg} at character "
                                                      f"{self.read + exc.pos:,})")]) from None
            except RecursionError:
                raise BundleRejected([Problem("", "", "nested too deeply")]) from None
            # A number (or literal) that ends the block may go on in the next one.
            if end < len(self.text) or not self._more():
                start, self.pos = self.pos, end
                return value, self.text[start:end]


class BundleFile:
    """A STIX bundle file, its objects given a part at a time by `parts()` (as often as it is
    called: each call reads the file again). `warnings`: what reading it noted, complete once
    `parts()` has been read to the end. `progress`, if set, is called with the characters read
    (a CLI progress bar of `readings * size`): in the first reading a part's share as each
    of its objects is checked (`checked`, post_note's progress), in a later one as each part
    is given. `watch`, if set, is called with each part the next reading gives (only that
    one)."""

    def __init__(self, path: Path, limits: StixLimits, part_objects: int | None = None):
        self.path, self.limits = path, limits
        self.size = path.stat().st_size
        self.part_objects = part_objects or (
            PART_OBJECTS if self.size > ONE_PART_BYTES else limits.max_objects)
        if self.size > limits.max_bytes:
            raise BundleRejected([Problem("", "", f"the bundle is {self.size:,} bytes; the "
                                                  f"limit is {limits.max_bytes:,}")],
                                 status_code=413)
        self.warnings: list[str] = []
        self.progress: Callable[[int], object] | None = None
        self.watch: Callable[[Parsed], object] | None = None
        self.count = 0  # the objects the last complete reading found
        # Read twice (checked, then stored) unless it is one part (kept between the two).
        self.readings = 1 if self.part_objects >= limits.max_objects else 2
        self._share, self._owed = 0.0, 0.0  # characters per object checked, not yet told
        # Each part is checked against the limits of an object, not of the file (above) and
        # the count of the whole (_objects).
        self._part_limits = replace(limits, max_bytes=1 << 62, max_objects=1 << 62)
        self._whole: Parsed | None = None
        # Where each part's text is (characters of the file) and its digest: of the reading
        # under way, and of the first one read to the end (checked).
        self._read: list[tuple[int, int, bytes]] = []
        self._checked: list[tuple[int, int, bytes]] | None = None

    def parts(self) -> Iterator[Parsed]:
        watch, self.watch = self.watch, None
        for part in self._parts():
            if watch is not None:
                watch(part)
            yield part

    def _parts(self) -> Iterator[Parsed]:
        if self._checked is not None:
            yield from self._again(self._checked)
            return
        if self._whole is None:
            try:
                yield from self._streamed()
                return
            except _NotStreamed:
                self._whole = parse_bundle(self.path.read_bytes(), self.limits)
                self.warnings[:] = self._whole.warnings
        self.count = len(self._whole.objects)
        self._share = self.size / max(1, self.count)
        yield self._whole

    def _streamed(self) -> Iterator[Parsed]:
        with open(self.path, encoding="utf-8", newline="") as handle:
            text = _Text(handle)
            try:
                yield from self._bundle(text)
            except UnicodeDecodeError as exc:
                raise BundleRejected([Problem("", "", f"not valid JSON (not UTF-8: {exc.reason} "
                                                      f"at byte {exc.start:,} of a block)")]
                                     ) from None

    def _bundle(self, text: _Text) -> Iterator[Parsed]:
        if text.peek() != "{":
            raise _NotStreamed
        text.pos += 1
        header: dict = {}
        streamed = False
        while text.peek() != "}":
            if header or streamed:
                text.expect(",")
            key, _ = text.value()
            if not isinstance(key, str):
                raise BundleRejected([Problem("", "", "not valid JSON (a property name that "
                                                      "is not a string)")])
            text.expect(":")
            if key == "objects" and streamed:
                raise BundleRejected([Problem(str(header.get("id", "")), "objects",
                                              "the bundle has two lists of objects")])
            if key == "objects" and header.get("type") == "bundle" and text.peek() == "[":
                streamed = True
                yield from self._objects(text)
            elif key == "objects":
                raise _NotStreamed  # nothing was given yet: parse_bundle's answer
            else:
                header[key], _ = text.value()
        text.pos += 1
        if not streamed:
            raise _NotStreamed  # a bundle without objects: parse_bundle's answer
        if text.peek():
            raise BundleRejected([Problem("", "", "not valid JSON (text after the bundle, at "
                                                  f"character {text.read + text.pos:,})")])
        self._check_header(header)
        # Read to the end and checked: a later reading parses the same text only.
        self._checked = self._read

    def _objects(self, text: _Text) -> Iterator[Parsed]:
        text.expect("[")
        pieces: list[str] = []
        self._read = []
        count, last = 0, text.read + text.pos
        text.span()
        while text.peek() != "]":
            if count:
                text.expect(",")
            pieces.append(text.value()[1])
            count += 1
            if count > self.limits.max_objects:
                raise BundleRejected([Problem("", "objects", "more objects than the limit "
                                                             f"of {self.limits.max_objects:,}")],
                                     status_code=413)
            if len(pieces) == self.part_objects:
                part, pieces = self._part(pieces), []
                last = self._give(text, last, len(part.objects))
                yield part
                del part
        if not count:
            raise _NotStreamed  # an empty list: parse_bundle's answer
        if pieces:
            part, pieces = self._part(pieces), []
            self._give(text, last, len(part.objects))
            yield part
            del part
        text.pos += 1
        self.count = count

    def _part(self, pieces: list[str]) -> Parsed:
        """The objects of one part, checked against the limits as a posted envelope is."""
        return parse_envelope('{"objects":[' + ",".join(pieces) + "]}", self._part_limits)

    def _again(self, checked: list[tuple[int, int, bytes]]) -> Iterator[Parsed]:
        """A reading after the first complete one: each part's text read where the first
        reading found it and, if it is the text checked then (its digest), parsed only."""
        try:
            with open(self.path, encoding="utf-8", newline="") as handle:
                at = 0
                for start, end, digest in checked:
                    while at < start:  # the bundle's properties before its objects
                        skipped = handle.read(min(start - at, _BLOCK))
                        if not skipped:
                            raise _changed()
                        at += len(skipped)
                    text, at = handle.read(end - start), end
                    if hashlib.blake2b(text.encode(), digest_size=32).digest() != digest:
                        raise _changed()
                    if self.progress is not None:
                        self.progress(end - start)
                    # Its text from the end of the part before: a comma before its first object.
                    yield Parsed(objects=orjson.loads(
                        "[" + text.lstrip(" \t\n\r").removeprefix(",") + "]"))
                    del text
                while rest := handle.read(_BLOCK):  # and no object after them
                    if rest.strip(" \t\n\r"):
                        if not rest.lstrip(" \t\n\r").startswith("]"):
                            raise _changed()
                        break
                else:
                    raise _changed()
        except UnicodeDecodeError:
            raise _changed() from None

    def _give(self, text: _Text, last: int, objects: int) -> int:
        """Note where a part about to be given ends (`text`'s position) and its digest; its
        progress is shared among its objects as they are checked."""
        now = text.read + text.pos
        self._read.append((last, now, text.span() or b""))
        self._share = (now - last) / max(1, objects)
        return now

    def checked(self, count: int) -> None:
        """`count` objects of the part given last are checked (post_note's `progress`)."""
        self._owed += count * self._share
        if self._owed >= 1 and self.progress is not None:
            told = int(self._owed)
            self._owed -= told
            self.progress(told)

    def _check_header(self, header: dict) -> None:
        """parse_bundle's checks of the bundle itself (its objects were streamed)."""
        if header.get("spec_version") == "2.0":
            raise BundleRejected([Problem(str(header.get("id", "")), "spec_version",
                                          "STIX 2.0 content; upgrade it to STIX 2.1 first")])
        warnings = []
        if "spec_version" in header:
            warnings.append("the bundle carries spec_version, which STIX 2.1 bundles do not "
                            "have; it was ignored")
        self.warnings[:] = warnings
