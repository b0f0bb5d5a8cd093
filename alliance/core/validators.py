"""Form validators shared by every domain."""
import unicodedata

from wtforms.validators import ValidationError

# Bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): in a name
# they reorder what people read, so one organisation's name can pass for another's.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TEXT_WHITESPACE = frozenset("\n\r\t")


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls (NUL, CR, LF, ESC, NEL, ...); Zl/Zp: U+2028/U+2029, which Python and
    # the e-mail package also treat as line breaks.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def one_line(text: str) -> str:
    """`text` with what SingleLine refuses (control characters, line breaks, bidi overrides)
    turned into spaces, and runs of spaces into one: for a one-line value taken from content
    rather than typed into a form (a TAXII report's name as a note's title)."""
    return " ".join("".join(" " if _is_control(ch) or ch in _BIDI_CONTROLS else ch
                            for ch in text).split())


class SingleLine:
    """A one-line value (a name, a short reason): no control characters, line breaks or bidi
    overrides. Such values end up in e-mail subjects (where a line break would split the
    header), audit labels and page titles; PostgreSQL refuses NUL in text outright, which
    would otherwise surface as a 500."""

    message = "Use letters, digits and punctuation only, on one line."

    def __call__(self, form, field):
        if isinstance(field.data, str) and any(_is_control(ch) or ch in _BIDI_CONTROLS
                                               for ch in field.data):
            raise ValidationError(self.message)


class PlainText:
    """A multi-line text (a charter, a message, a reason): line breaks and tabs are fine, other
    control characters (NUL above all, which PostgreSQL refuses) are not."""

    message = "This text contains control characters; remove them and try again."

    def __call__(self, form, field):
        if isinstance(field.data, str) and any(_is_control(ch) and ch not in _TEXT_WHITESPACE
                                               for ch in field.data):
            raise ValidationError(self.message)
