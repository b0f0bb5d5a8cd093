"""Development convenience, an operations page: platform admins read the local maildir the
platform writes to when MAIL_URL is a folder (the `make run` default)."""
import mailbox
import os
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.utils import parsedate_to_datetime

from flask import Blueprint, abort, current_app, render_template

from alliance.auth.access import admin_required

bp = Blueprint("mail", __name__)


def _maildir():
    url = current_app.config["MAIL_URL"]
    if not current_app.config.get("MAILDIR_ADMIN_PAGE") or url.startswith(("smtp://", "smtps://")):
        abort(404)
    path = url[len("maildir://"):] if url.startswith("maildir://") else url
    # A folder without cur/ and new/ is not (yet) a maildir: no mail has been written.
    if not all(os.path.isdir(os.path.join(path, sub)) for sub in ("cur", "new")):
        return None
    return mailbox.Maildir(path, create=False)


def _decode(part) -> str:
    payload = part.get_payload(decode=True) or b""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:  # a charset name Python does not know: show what UTF-8 makes of it
        return payload.decode("utf-8", "replace")


def _header(value) -> str:
    """A header as people read it: RFC 2047 encoded words (non-ASCII subjects) decoded, and
    a header written in UTF-8 itself (RFC 6532: mail to josé@…) read as UTF-8."""
    if value is None:
        return ""
    try:
        if isinstance(value, Header):  # the maildir's parser: raw 8-bit text in the header
            return "".join(chunk.decode("utf-8" if charset in (None, "unknown-8bit")
                                        else charset, "replace")
                           if isinstance(chunk, bytes) else chunk
                           for chunk, charset in decode_header(value))
        return str(make_header(decode_header(str(value))))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return str(value)


def _parts(msg):
    text = html = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not text:
            text = _decode(part)
        elif part.get_content_type() == "text/html" and not html:
            html = _decode(part)
    return text, html


@bp.route("/")
@admin_required
def inbox():
    box = _maildir()
    mails = []
    for key, msg in (box.iteritems() if box is not None else []):
        try:
            sent = parsedate_to_datetime(msg["Date"])
        except (TypeError, ValueError):
            sent = None
        mails.append({"key": key, "to": _header(msg["To"]), "subject": _header(msg["Subject"]),
                      "sent": sent})
    mails.sort(key=lambda m: m["sent"].timestamp() if m["sent"] else 0, reverse=True)
    return render_template("mail/inbox.html", mails=mails[:500], total=len(mails))


@bp.route("/<key>")
@admin_required
def show(key):
    box = _maildir()
    if box is None:
        abort(404)
    try:
        msg = box[key]
    except KeyError:
        abort(404)
    text, html = _parts(msg)
    headers = [(k, _header(v)) for k, v in msg.items()]
    return render_template("mail/show.html", key=key, subject=_header(msg["Subject"]),
                           text=text, html=html, headers=headers)
