"""One small mail service: render a text + HTML pair from templates/emails/, and send it by
SMTP, SMTPS or into a maildir, as MAIL_URL says. Mail is only ever sent by the outbox handler
below, in a Celery worker, after the transaction that asked for it has committed."""
import mailbox
import os
import smtplib
import ssl
import unicodedata
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template

from alliance.outbox.services import PermanentFailure, TemporaryFailure, enqueue, handler


def queue_mail(to: str | list[str], template: str, subject: str, **context) -> None:
    """Ask for a mail to be sent after the current transaction commits. context must be
    JSON-serialisable plain values; the template renders them in the worker, autoescaped."""
    recipients = [to] if isinstance(to, str) else list(to)
    for address in sorted(set(recipients)):
        enqueue("mail", to=address, template=template, subject=subject, context=context)


def render_mail(template: str, **context) -> tuple[str, str]:
    """Render emails/<template>.txt and .html. Both are autoescaped (the app's Jinja
    environment escapes every template), so nothing a user typed becomes markup."""
    context.setdefault("base_url", current_app.config["BASE_URL"].rstrip("/"))
    text = render_template(f"emails/{template}.txt", **context)
    html = render_template(f"emails/{template}.html", **context)
    return text, html


def header_text(value: str) -> str:
    """A header value on one line: every control character and line or paragraph separator
    (CR, LF, NUL, U+2028, ...) becomes a space and runs of spaces collapse. Subjects carry
    names people typed; a line break in one would end the header (the e-mail package refuses
    it, and the mail would then fail on every retry) or, with a laxer library, start a new
    one such as Bcc."""
    return " ".join("".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                            for ch in str(value)).split())


# Headers are folded at RFC 5322's hard limit (998), not at 78 columns: a header that cannot
# be folded within 78 (List-Unsubscribe's long signed URL has no space to fold at) would
# otherwise go out as RFC 2047 encoded words, which a URL header must not be, and mail
# clients would not find the one-click unsubscribe link. smtplib and the maildir write
# the message with its own policy.
MAIL_POLICY = policy.default.clone(max_line_length=998)
# Parts larger than this are base64-encoded: the e-mail package's quoted-printable encoder is
# pure Python and took a fifth of a 300 KB digest's worker time; base64 is C and every client
# reads it. Short mails keep the readable default.
BASE64_ABOVE = 16 * 1024


def _transfer_encoding(body: str) -> str | None:
    return "base64" if len(body) > BASE64_ABOVE else None


def build_message(to: str, subject: str, text: str, html: str, message_id: str,
                  headers: dict | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = to
    msg["Subject"] = header_text(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = header_text(value)
    msg.set_content(text, cte=_transfer_encoding(text))
    msg.add_alternative(html, subtype="html", cte=_transfer_encoding(html))
    msg.policy = MAIL_POLICY  # after the parts: their encoding stays as it was
    return msg


def deterministic_message_id(key: str) -> str:
    """The same key always gives the same Message-ID, so a resent mail is recognisable."""
    domain = urlsplit(current_app.config["BASE_URL"]).hostname or "alliance.localhost"
    return f"<{key}@{domain}>"


def send_message(msg: EmailMessage) -> None:
    """Deliver by the backend MAIL_URL names. Raises TemporaryFailure for what may work later
    (4xx, timeouts, refused connections) and PermanentFailure for what never will (5xx)."""
    url = current_app.config["MAIL_URL"]
    scheme = urlsplit(url).scheme
    if scheme in ("smtp", "smtps"):
        _send_smtp(url, msg)
    else:
        path = url[len("maildir://"):] if url.startswith("maildir://") else url
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips an existing folder
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        mailbox.Maildir(path, create=False).add(msg)


def _send_smtp(url: str, msg: EmailMessage) -> None:
    parts = urlsplit(url)
    timeout = current_app.config["MAIL_TIMEOUT"]
    host = parts.hostname or "localhost"
    try:
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
        with client:
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(msg)
    except smtplib.SMTPNotSupportedError as exc:
        # e.g. an address that needs SMTPUTF8 and a server without it: no retry will help.
        raise PermanentFailure(f"SMTP: {exc}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TemporaryFailure(f"recipient deferred: {exc.recipients}") from exc
        raise PermanentFailure(f"recipient refused: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TemporaryFailure(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        raise PermanentFailure(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
    except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
        raise TemporaryFailure(f"SMTP connection: {exc}") from exc


@handler("mail")
def send_queued_mail(message) -> None:
    """Outbox handler: render and send one queued mail, with a Message-ID derived from the
    outbox row so a retried send carries the same id."""
    p = message.payload
    text, html = render_mail(p["template"], **p.get("context", {}))
    try:
        msg = build_message(p["to"], p["subject"], text, html,
                            deterministic_message_id(f"outbox-{message.id}"))
    except ValueError as exc:  # a header the e-mail package refuses: the same on every retry
        raise PermanentFailure(f"cannot build the message: {exc}") from exc
    send_message(msg)
