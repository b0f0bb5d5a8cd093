"""A large mail (a digest) is encoded and flattened by shortcuts in alliance.mail.services
(_base64_lines, flatten): they must give exactly the bytes the e-mail package gives."""
import io
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.message import EmailMessage

import pytest

from alliance.mail.services import BASE64_ABOVE, _transfer_encoding, build_message, flatten

LARGE_TEXT = ("Line with ü — … and a dot\n.starts this line\r\nCRLF\rCR only\u2028sep\n" * 900)
LARGE_HTML = "<p>" + "&lt;script&gt; é " * 20000 + "</p>\n"


@pytest.mark.parametrize("text,html", [
    (LARGE_TEXT, LARGE_HTML),
    ("short ü", "<p>short</p>"),
    (LARGE_TEXT, "<p>short</p>"),
    ("x" * (BASE64_ABOVE + 1), "y\n" * (BASE64_ABOVE + 1)),
])
def test_large_parts_are_encoded_as_set_content_encodes_them(app, text, html):
    with app.test_request_context():
        msg = build_message("reader@example.com", "Digest — ü", text, html, "<id@alliance.test>",
                            headers={"List-Unsubscribe": "<http://alliance.test/u/" + "t" * 300
                                     + ">"})
    reference = EmailMessage()
    reference.set_content(text, cte=_transfer_encoding(text))
    reference.add_alternative(html, subtype="html", cte=_transfer_encoding(html))
    for ours, theirs in zip(msg.iter_parts(), reference.iter_parts(), strict=True):
        assert ours.items() == theirs.items()
        assert ours.get_payload() == theirs.get_payload()
        assert ours.get_content() == theirs.get_content()


@pytest.mark.parametrize("text,html", [(LARGE_TEXT, LARGE_HTML), ("short", "<p>short</p>")])
def test_flatten_gives_the_bytes_of_the_generator(app, text, html):
    with app.test_request_context():
        msg = build_message("reader@example.com", "Digest", text, html, "<id@alliance.test>")
    ours = flatten(msg)
    out = io.BytesIO()
    BytesGenerator(out).flatten(msg, linesep="\r\n")  # the boundary chosen above is kept
    assert ours == out.getvalue()
    parsed = message_from_bytes(ours, policy=policy.default)
    plain, rich = (parsed.get_body(("plain",)), parsed.get_body(("html",)))
    for part, body in ((plain, text), (rich, html)):  # line ends normalised as set_content does
        content = part.get_content().replace("\r\n", "\n")  # a 7bit part keeps the wire's CRLF
        assert content == b"\n".join(body.encode().splitlines()).decode() + "\n"


def test_dot_stuffing_is_smtplibs():
    """_quote_periods replaces smtplib's regular expression: the same bytes for lines that
    start with dots, at the very start, after CR alone, and in random mixes."""
    import random
    import re

    from alliance.mail.services import _quote_periods

    def reference(data: bytes) -> bytes:  # smtplib._quote_periods
        return re.sub(br"(?m)^\.", b"..", data)

    rng = random.Random(7)
    samples = [b"", b".", b"..", b".\r\n", b"a\r\n.\r\n", b"a\n.b", b"a\r.b", b"\n\n..\n.",
               b".start\r\n.\r\n..\r\nend."]
    samples += [bytes(rng.choice(b".\r\na ") for _ in range(rng.randrange(40)))
                for _ in range(5000)]
    for data in samples:
        assert _quote_periods(data) == reference(data), data
