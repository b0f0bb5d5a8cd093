"""Mail to addresses that are not plain ASCII (josé@…, …@bücher.example): the To header is a
valid address, and delivery goes through a real SMTP server (aiosmtpd), with SMTPUTF8 when
the mailbox name needs it. Before, the e-mail package wrote such an address as RFC 2047
encoded words ("To: =?utf-8?q?jos=C3=A9?=@example.org"), which no address may contain."""
import mailbox

import pytest

from alliance.extensions import db
from alliance.mail.services import build_message, recipient_address
from alliance.outbox.models import OutboxMessage
from alliance.outbox.services import enqueue, run_message
from tests.servers import SMTPSink

CONTEXT = {"org_name": "Org", "alliance_name": "Atlantic", "link": "http://alliance.test/x"}


@pytest.mark.parametrize(("given", "expected"), [
    ("reader@example.com", "reader@example.com"),
    ("user@bücher.example", "user@xn--bcher-kva.example"),
    ("josé@example.org", "josé@example.org"),
    ("josé@bücher.example", "josé@xn--bcher-kva.example"),
    ("x@ÉXAMPLE.org", "x@xn--xample-9ua.org"),  # UTS 46 maps case before encoding
])
def test_the_recipient_domain_is_written_in_ascii(given, expected):
    assert recipient_address(given) == expected


@pytest.mark.parametrize("given", ["no-at-sign", "@example.org", "user@", "a b@example.org",
                                   "a@example.com\nBcc: b@example.com", "x@-bad-.ü"])
def test_what_cannot_be_an_address_is_refused(given):
    with pytest.raises(ValueError):
        recipient_address(given)


def _queue(to: str) -> OutboxMessage:
    message = enqueue("mail", to=to, template="member_joined", subject="Someone joined",
                      context=CONTEXT)
    db.session.commit()
    return message


def test_a_non_ascii_mailbox_name_is_written_in_utf8_in_the_maildir(app, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_URL", str(tmp_path / "maildir"))
    message = _queue("josé@bücher.example")

    assert run_message(message.id) == "done"
    box = mailbox.Maildir(app.config["MAIL_URL"], create=False)
    [key] = [k for k, m in box.items() if m["Message-ID"] == f"<outbox-{message.id}@alliance.test>"]
    raw = box.get_bytes(key)
    headers = raw.split(b"\n\n", 1)[0]
    assert "To: josé@xn--bcher-kva.example".encode() in headers.splitlines()
    assert b"=?" not in headers.split(b"\nSubject:")[0]  # no encoded word in From or To


@pytest.fixture
def sink():
    server = SMTPSink(smtputf8=True).start()
    yield server
    server.stop()


@pytest.fixture
def ascii_only_sink():
    server = SMTPSink(smtputf8=False).start()
    yield server
    server.stop()


def _deliver(app, server, monkeypatch, to: str) -> tuple:
    """Queue and send a mail through the SMTP server: (MAIL FROM options, RCPT TO, the
    headers received, one per line, the parsed mail)."""
    monkeypatch.setitem(app.config, "MAIL_URL", server.url)
    message = _queue(to)
    assert run_message(message.id) == "done"
    [mail] = server.wait_for(1)
    [(options, rcpt, raw)] = server.envelopes
    return options, rcpt, raw.split(b"\r\n\r\n", 1)[0].splitlines(), mail


def test_an_idn_domain_is_delivered_by_smtp_to_its_ascii_form(app, sink, monkeypatch):
    options, rcpt, headers, mail = _deliver(app, sink, monkeypatch, "reader@bücher.example")

    assert rcpt == ["reader@xn--bcher-kva.example"] and "SMTPUTF8" not in options
    assert mail["To"].addresses[0].addr_spec == "reader@xn--bcher-kva.example"
    assert all(line.isascii() for line in headers)


def test_a_non_ascii_mailbox_name_is_delivered_with_smtputf8(app, sink, monkeypatch):
    options, rcpt, headers, mail = _deliver(app, sink, monkeypatch, "josé@bücher.example")

    assert rcpt == ["josé@xn--bcher-kva.example"] and "SMTPUTF8" in options
    # The header in UTF-8 as it is (RFC 6532), not as encoded words.
    assert "To: josé@xn--bcher-kva.example".encode() in headers
    assert mail["Subject"] == "Someone joined"


def test_a_server_without_smtputf8_fails_the_mail_at_once_instead_of_retrying(
        app, ascii_only_sink, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_URL", ascii_only_sink.url)
    message = _queue("josé@example.org")

    assert run_message(message.id) == "failed"
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.failed_at is not None and "SMTPUTF8" in row.last_error
    assert ascii_only_sink.messages == []


def test_an_ascii_address_keeps_the_plain_policy(app):
    with app.test_request_context():
        plain = build_message("reader@example.com", "S", "t", "<p>h</p>", "<a@alliance.test>")
        utf8 = build_message("josé@example.com", "S", "t", "<p>h</p>", "<b@alliance.test>")
    assert plain.policy.utf8 is False and utf8.policy.utf8 is True
    assert plain.as_bytes().isascii()
