"""Text helpers for names shown in URLs."""
import re
import unicodedata


def slugify(value: str, max_length: int = 60) -> str:
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    return value[:max_length].strip("-") or "item"


def render_markdown(text: str):
    """Markdown to HTML that is safe to show: nh3 keeps a small set of tags and attributes,
    only http, https and mailto links, and adds rel="noopener noreferrer nofollow"."""
    import markdown
    import nh3
    from markupsafe import Markup

    html = markdown.markdown(text or "", extensions=["fenced_code", "tables"],
                             output_format="html")
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
