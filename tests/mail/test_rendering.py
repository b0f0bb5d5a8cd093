"""Mail is rendered with autoescaping in both parts, and sent with the right headers."""
import mailbox
import os

from alliance.extensions import db
from alliance.mail.services import render_mail
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
