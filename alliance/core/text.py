"""Text helpers for names shown in URLs."""
import re
import unicodedata
from functools import lru_cache


def slugify(value: str, max_length: int = 60) -> str:
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    return value[:max_length].strip("-") or "item"


# What XML 1.0 forbids (section 2.2): controls but tab, newline and return; surrogates;
# U+FFFE and U+FFFF. One such character makes a whole Atom feed unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value) -> str:
    """The text with the characters XML 1.0 cannot hold dropped (escaping is autoescape's)."""
    return _NOT_XML.sub("", "" if value is None else str(value))


# Text that is longer, or holds more brackets, is shown as plain text, not rendered: even
# markdown-it has inputs whose cost grows with the square of their length (unclosed "[",
# link references), a STIX description may be 1 MB, and a note page renders for every
# reader. Within both, the worst inputs known render with bounded work
# (tests/core/test_hostile_input.py counts it).
MARKDOWN_MAX = 10_000
MARKDOWN_MAX_BRACKETS = 200


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    # CommonMark (fenced code included) plus tables; raw HTML is shown as text. Its nesting
    # limit (20) keeps "- - - ... x" from recursing without end: what is nested deeper is
    # left out. (A higher one multiplies the cost of every "[".)
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(text: str):
    """Markdown to HTML that is safe to show: nh3 keeps a small set of tags and attributes,
    only http, https and mailto links, and adds rel="noopener noreferrer nofollow". Text
    over MARKDOWN_MAX characters or MARKDOWN_MAX_BRACKETS "[" is shown escaped, as it is."""
    import nh3
    from markupsafe import Markup, escape

    text = text or ""
    if len(text) > MARKDOWN_MAX or text.count("[") > MARKDOWN_MAX_BRACKETS:
        return Markup('<p class="plain-text">') + escape(text) + Markup("</p>")
    html = _markdown().render(text)
    clean = nh3.clean(
        html,
        tags={"p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a",
              "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th",
              "td"},
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 (sanitised by nh3 just above)
