"""Mail is rendered with autoescaping in both parts, and sent with the right headers."""
import mailbox
import os
from email import message_from_bytes
from email.message import EmailMessage

import pytest

from alliance.extensions import db
from alliance.mail.services import build_message, render_mail
from alliance.outbox.models import OutboxMessage
from alliance.outbox.services import enqueue, run_message

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_user_strings_are_escaped_in_the_html_and_text_parts():
    text, html = render_mail("membership_decision", org_name=HOSTILE, alliance_name=HOSTILE,
                             state="rejected", action="reject", reason=HOSTILE,
                             link="http://alliance.test/alliances/x")
    for part in (text, html):
        assert "<script>" not in part and "<img" not in part
        assert "&lt;script&gt;" in part


def test_queued_mail_lands_in_the_maildir_with_a_deterministic_message_id(app):
    message = enqueue("mail", to="reader@example.com", template="member_joined",
                      subject="Someone joined", context={"org_name": "Org", "alliance_name": "A",
                                                         "link": "http://alliance.test/x"})
    db.session.commit()
    assert run_message(message.id) == "done"
    box = mailbox.Maildir(app.config["MAIL_URL"], create=False)
    mails = [m for m in box if m["Message-ID"] == f"<outbox-{message.id}@alliance.test>"]
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == "reader@example.com" and mail["Subject"] == "Someone joined"
    types = [part.get_content_type() for part in mail.walk()]
    assert "text/plain" in types and "text/html" in types
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).done_at is not None
    assert os.path.isdir(app.config["MAIL_URL"])


# --- headers built from names people typed -------------------------------------------------

@pytest.mark.parametrize("subject", [
    "Evil Org\r\nBcc: everyone@example.com asks to join",
    "Evil Org\nBcc: everyone@example.com asks to join",
    "Evil Org\rBcc: everyone@example.com asks to join",
    "Evil Org\u2028Bcc: everyone@example.com asks to join",
    "Evil Org\x00\x0bBcc: everyone@example.com asks to join",
])
def test_a_subject_with_line_breaks_becomes_one_line_and_adds_no_header(app, subject):
    with app.test_request_context():
        msg = build_message("reader@example.com", subject, "text", "<p>html</p>",
                            "<id@alliance.test>")
    raw = msg.as_bytes()
    parsed = message_from_bytes(raw)

    assert parsed["Subject"] == "Evil Org Bcc: everyone@example.com asks to join"
    assert parsed["Bcc"] is None
    assert b"\nBcc:" not in raw and b"\x00" not in raw


def test_a_queued_mail_whose_subject_carries_a_line_break_is_delivered_at_once(app):
    """Before: the e-mail package refused the header, the handler failed, and the mail was
    retried until the outbox gave up on it (a coordinator never heard of the request)."""
    message = enqueue("mail", to="coordinator@example.com", template="member_joined",
                      subject="Evil\r\nBcc: everyone@example.com joined Atlantic",
                      context={"org_name": "Evil\r\nBcc: everyone@example.com",
                               "alliance_name": "Atlantic", "link": "http://alliance.test/x"})
    db.session.commit()

    assert run_message(message.id) == "done"
    box = mailbox.Maildir(app.config["MAIL_URL"], create=False)
    [mail] = [m for m in box if m["Message-ID"] == f"<outbox-{message.id}@alliance.test>"
              and m["To"] == "coordinator@example.com"]
    assert mail["Subject"] == "Evil Bcc: everyone@example.com joined Atlantic"
    assert mail["Bcc"] is None


def test_a_mail_that_cannot_be_built_fails_at_once_instead_of_being_retried():
    message = enqueue("mail", to="a@example.com\nBcc: b@example.com", template="member_joined",
                      subject="Joined", context={"org_name": "O", "alliance_name": "A",
                                                 "link": "http://alliance.test/x"})
    db.session.commit()

    assert run_message(message.id) == "failed"
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.failed_at is not None and "cannot build" in row.last_error


# --- the maildir page ----------------------------------------------------------------------

def _deliver(app, msg) -> str:
    return mailbox.Maildir(app.config["MAIL_URL"], create=True).add(msg)


def test_the_maildir_page_shows_non_ascii_subjects_decoded(app, as_admin):
    with app.test_request_context():
        msg = build_message("zoe@example.com", "Zürich CERT asks to join Ōsaka Alliance",
                            "Grüße", "<p>Grüße</p>", "<unicode-subject@alliance.test>")
    key = _deliver(app, msg)

    inbox = as_admin.get("/admin/mail/").get_data(as_text=True)
    page = as_admin.get(f"/admin/mail/{key}").get_data(as_text=True)

    assert "Zürich CERT asks to join Ōsaka Alliance" in inbox
    assert "<h1>Zürich CERT asks to join Ōsaka Alliance</h1>" in page
    assert "=?utf-8?" not in page


def test_the_maildir_page_shows_a_part_with_an_unknown_charset(app, as_admin):
    msg = EmailMessage()
    msg["To"], msg["Subject"] = "x@example.com", "Odd charset"
    msg.set_content("plain words")
    msg.replace_header("Content-Type", 'text/plain; charset="x-no-such-charset"')
    key = _deliver(app, msg)

    response = as_admin.get(f"/admin/mail/{key}")

    assert response.status_code == 200
    assert "plain words" in response.get_data(as_text=True)


@pytest.mark.parametrize("key", ["..", "../secret_key", "%2e%2e%2fsecret_key", "new", "cur"])
def test_the_maildir_page_opens_messages_only_by_their_key(app, as_admin, key):
    assert as_admin.get(f"/admin/mail/{key}").status_code == 404


def test_large_parts_are_base64_and_read_back_the_same(app):
    """A big digest's parts go out base64 (fast to encode); short mails stay readable."""
    from alliance.mail.services import BASE64_ABOVE, build_message

    big_text = "Line of a long digest: AT&T, Zürich, <b>.\n" * (BASE64_ABOVE // 30)
    big_html = "<p>Zürich &amp; more</p>\n" * (BASE64_ABOVE // 20)
    with app.test_request_context():
        big = build_message("a@example.org", "Big", big_text, big_html, "<big@x>")
        small = build_message("a@example.org", "Small", "Short text.\n", "<p>Short</p>\n",
                              "<small@x>")
    parts = {p.get_content_type(): p for p in big.walk() if not p.is_multipart()}
    assert {p["Content-Transfer-Encoding"] for p in parts.values()} == {"base64"}
    assert parts["text/plain"].get_content() == big_text
    assert parts["text/html"].get_content() == big_html
    small_parts = [p for p in small.walk() if not p.is_multipart()]
    assert all(p["Content-Transfer-Encoding"] != "base64" for p in small_parts)


@pytest.mark.parametrize("layout", ["missing", "bare folder", "only new/"])
def test_the_maildir_page_says_no_mail_yet_before_any_mail_was_written(app, as_admin,
                                                                       tmp_path, layout):
    folder = tmp_path / "maildir"
    if layout != "missing":
        folder.mkdir()
    if layout == "only new/":
        (folder / "new").mkdir()
    saved = app.config["MAIL_URL"]
    app.config["MAIL_URL"] = str(folder)
    try:
        inbox = as_admin.get("/admin/mail/")
        message = as_admin.get("/admin/mail/some-key")
    finally:
        app.config["MAIL_URL"] = saved
    assert inbox.status_code == 200
    assert "No mail yet" in inbox.get_data(as_text=True)
    assert message.status_code == 404


def test_the_maildir_page_shows_a_non_ascii_recipient_as_written(app, as_admin):
    with app.test_request_context():
        msg = build_message("josé@bücher.example", "Hello", "t", "<p>h</p>",
                            "<utf8-recipient@alliance.test>")
    key = _deliver(app, msg)

    inbox = as_admin.get("/admin/mail/").get_data(as_text=True)
    page = as_admin.get(f"/admin/mail/{key}").get_data(as_text=True)

    for shown in (inbox, page):
        assert "josé@xn--bcher-kva.example" in shown
        assert "\ufffd" not in shown and "=?" not in shown


@pytest.mark.parametrize(("base", "namespace"), [
    ("https://alliance.example.org", "alliance.example.org"),
    ("http://127.0.0.1:5000", "localhost"),
    ("https://bücher.example", "xn--bcher-kva.example")])
def test_mail_one_can_unsubscribe_from_names_its_list(app, monkeypatch, base, namespace):
    """RFC 2919: List-Id next to List-Unsubscribe; before, only List-Unsubscribe was sent."""
    monkeypatch.setitem(app.config, "BASE_URL", base)
    with app.test_request_context():
        msg = build_message("reader@example.com", "Digest", "text", "<p>html</p>", "<k@x>",
                            headers={"List-Unsubscribe": "<https://x.example/u/t>"})
        plain = build_message("reader@example.com", "Welcome", "text", "<p>html</p>", "<k@y>")
    raw = msg.as_bytes()
    assert f"List-Id: CyberPeace Alliance digests and alerts <digests.{namespace}>".encode() in raw
    assert msg["List-Unsubscribe"] == "<https://x.example/u/t>"
    assert "List-Id" not in plain  # a mail one cannot unsubscribe from is no list's
