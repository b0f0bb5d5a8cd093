"""One small mail service: render a text + HTML pair from templates/emails/, and send it by
SMTP, SMTPS or into a maildir, as MAIL_URL says. Mail is only ever sent by the outbox handler
below, in a Celery worker, after the transaction that asked for it has committed."""
import binascii
import io
import logging
import mailbox
import os
import re
import secrets
import smtplib
import ssl
import unicodedata
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from typing import Any
from urllib.parse import unquote, urlsplit

import idna
from flask import current_app, render_template

from alliance.outbox.services import Handler, PermanentFailure, TemporaryFailure, enqueue

log = logging.getLogger(__name__)


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


class _HeaderClasses(HeaderRegistry):
    """The e-mail package's header registry, but each header class made once: the stock
    registry builds a new class with type() for every header it parses (some 30 a mail, each
    digest again). The classes hold no state; the parsed values are instances."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._made: dict = {}

    def map_to_type(self, name, cls):
        super().map_to_type(name, cls)
        self._made.clear()

    def __getitem__(self, name):
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# policy.default with the header classes above: nothing else differs.
BUILD_POLICY = policy.default.clone(header_factory=_HeaderClasses())
# Headers are folded at RFC 5322's hard limit (998), not at 78 columns: a header that cannot
# be folded within 78 (List-Unsubscribe's long signed URL has no space to fold at) would
# otherwise go out as RFC 2047 encoded words, which a URL header must not be, and mail
# clients would not find the one-click unsubscribe link. smtplib and the maildir write
# the message with its own policy.
MAIL_POLICY = BUILD_POLICY.clone(max_line_length=998)
# For a recipient whose mailbox name is not ASCII (josé@…): headers in UTF-8 (RFC 6532), the
# only valid way to write such an address; smtplib then asks the server for SMTPUTF8.
UTF8_MAIL_POLICY = MAIL_POLICY.clone(utf8=True)
# Parts larger than this are base64-encoded: the e-mail package's quoted-printable encoder is
# pure Python and took a fifth of a 300 KB digest's worker time; base64 is C and every client
# reads it. Short mails keep the readable default.
BASE64_ABOVE = 16 * 1024


def _transfer_encoding(body: str) -> str | None:
    return "base64" if len(body) > BASE64_ABOVE else None


_BASE64_LINE = re.compile(rb".{1,76}", re.DOTALL)  # cut in C: a third of slicing it in Python


def _base64_lines(body: str) -> list[bytes]:
    """The lines (without their line ends) of the payload set_content(body, cte="base64")
    stores: line breaks normalised to LF, UTF-8, each 57-byte chunk on a line of its own (76
    characters), as email.contentmanager._encode_base64 does. Encoded in one C call: 57 is a
    multiple of 3, so the encoding of the whole is the encodings of its 57-byte chunks end
    to end, and cutting it every 76 characters gives the same lines."""
    data = b"\n".join(body.encode("utf-8").splitlines()) + b"\n"
    return _BASE64_LINE.findall(binascii.b2a_base64(data, newline=False))


def recipient_address(address: str) -> str:
    """The address as it goes into To and RCPT TO: its domain in ASCII (IDNA, bücher.example
    -> xn--bcher-kva.example), which every mail server takes; the mailbox name as it is. The
    e-mail package would otherwise write a non-ASCII address as RFC 2047 encoded words
    ("=?utf-8?q?jos=C3=A9?=@example.org"), which are not allowed in an address: no client
    could reply to it and servers refuse it. Raises ValueError for what cannot be an
    address (a message that can never be built)."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in address.strip()):
        raise ValueError(f"{address!r} is not an e-mail address")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"the domain of {address!r} is not a valid domain name") from exc
    return f"{local}@{domain}"


def build_message(to: str, subject: str, text: str, html: str, message_id: str,
                  headers: dict | None = None) -> EmailMessage:
    msg = EmailMessage(policy=BUILD_POLICY)
    msg["From"] = current_app.config["MAIL_FROM"]
    to = recipient_address(to)
    msg["To"] = to
    msg["Subject"] = header_text(subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    headers = dict(headers or {})
    if "List-Unsubscribe" in headers and "List-Id" not in headers:
        # RFC 2919: mail one can unsubscribe from names its list, so that clients and
        # filters can tell it apart (and RFC 8058's one-click unsubscribe is offered).
        headers["List-Id"] = list_id()
    for name, value in headers.items():
        msg[name] = header_text(value)
    # A large part gets its headers from set_content (an empty body, base64) and then the
    # payload that set_content would have computed, encoded in C (_base64_lines).
    large = [_transfer_encoding(body) == "base64" for body in (text, html)]
    msg.set_content("" if large[0] else text, cte=_transfer_encoding(text))
    msg.add_alternative("" if large[1] else html, subtype="html",
                        cte=_transfer_encoding(html))
    part: Any  # its payload is read and set as email's own generator does (_payload)
    for part, body, big in zip(msg.iter_parts(), (text, html), large, strict=True):
        if big:
            lines = _base64_lines(body)
            payload = (b"\n".join(lines) + b"\n").decode("ascii")
            part.set_payload(payload)
            # The lines again for flatten(), which joins them with the wire's line ends
            # instead of converting the payload; used only while the payload is this one.
            part._alliance_base64 = (part._payload, lines)  # noqa: SLF001
    # After the parts: their encoding stays as it was.
    msg.policy = MAIL_POLICY if to.isascii() else UTF8_MAIL_POLICY
    return msg


def flatten(msg: EmailMessage, linesep: str = "\r\n") -> bytes:
    """The bytes BytesGenerator(out).flatten(msg, linesep=linesep) writes (what smtplib's
    send_message sends), without its cost for a large mail: the generator writes a base64
    body one 76-character line at a time (some 5,000 calls for a 300 KB digest) and searches
    the whole text for the boundary. Here each base64 body is stood in for by a token while
    the generator writes the headers and the structure, then put in its place with its line
    ends converted as the generator converts them. Safe because a base64 body is only
    [A-Za-z0-9+/=] and newlines: no boundary line ("--...") and no "From " can be in it."""
    swapped = []
    part: Any  # its payload is read and set as email's own generator does (_payload)
    try:
        for part in msg.walk():
            payload = part._payload  # noqa: SLF001 (the generator reads it the same way)
            if (part.is_multipart() or not isinstance(payload, str) or len(payload) < 4096
                    or part.get("Content-Transfer-Encoding", "").lower() != "base64"
                    or not payload.isascii()):
                continue
            token = f"AllianceBody{secrets.token_hex(16)}"
            ends = payload.endswith("\n")
            built = getattr(part, "_alliance_base64", None)
            if built is not None and built[0] is payload and ends:
                # build_message's own lines of this very payload: base64 characters only
                # (no CR, no token), joined as the generator would write them.
                wire = linesep.encode("ascii").join(built[1])
            else:
                body = (payload[:-1] if ends else payload).replace("\n", linesep)
                if "\r" in body.replace(linesep, "") or token in body:
                    continue  # not the generator's plain LF lines: let it write them
                wire = body.encode("ascii")
            swapped.append((part, payload, token.encode("ascii"), wire))
            part._payload = token + ("\n" if ends else "")  # noqa: SLF001
        out = io.BytesIO()
        BytesGenerator(out).flatten(msg, linesep=linesep)
        data = out.getvalue()
    finally:
        for part, payload, _, _ in swapped:
            part._payload = payload  # noqa: SLF001
    for _, _, placeholder, wire in swapped:
        if data.count(placeholder) != 1:
            raise RuntimeError("flatten: a body token is not where it was put")
        data = data.replace(placeholder, wire)
    return data


def _list_namespace() -> str:
    """RFC 2919's list-id-namespace: the site's domain name (BASE_URL's host, in ASCII), or
    "localhost" when it has none (an IP address)."""
    host = (urlsplit(current_app.config["BASE_URL"]).hostname or "").rstrip(".")
    try:
        host = idna.encode(host, uts46=True).decode("ascii") if not host.isascii() else host
    except idna.IDNAError:
        host = ""
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", host) or host.replace(".", "").isdigit():
        return "localhost"
    return host.lower()


def list_id(label: str = "digests") -> str:
    """The List-Id header (RFC 2919) of the platform's automated mail one can unsubscribe
    from: digests and watch-term alerts, which one link turns off."""
    return f"CyberPeace Alliance digests and alerts <{label}.{_list_namespace()}>"


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


def _quote_periods(data: bytes) -> bytes:
    """smtplib's dot-stuffing, re.sub(br'(?m)^\\.', b'..', data), as one C pass: a regular
    expression would be tried at every position of a digest that may be hundreds of KB."""
    quoted = data.replace(b"\n.", b"\n..")
    return b"." + quoted if quoted.startswith(b".") else quoted


class _FastData:
    """SMTP.data() for bytes, sending exactly what it sends (the message dot-stuffed, CRLF
    and "." after it), with _quote_periods above. A str message goes to smtplib's own."""

    def data(self, msg):
        if not isinstance(msg, bytes):
            return super().data(msg)
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        quoted = _quote_periods(msg)
        self.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
        return self.getreply()


class _SMTP(_FastData, smtplib.SMTP):
    pass


class _SMTP_SSL(_FastData, smtplib.SMTP_SSL):  # noqa: N801 (smtplib's name)
    pass


def _send_smtp(url: str, msg: EmailMessage) -> None:
    parts = urlsplit(url)
    timeout = current_app.config["MAIL_TIMEOUT"]
    host = parts.hostname or "localhost"
    client: smtplib.SMTP
    try:
        if parts.scheme == "smtps":
            client = _SMTP_SSL(host, parts.port or 465, timeout=timeout,
                               context=ssl.create_default_context())
        else:
            client = _SMTP(host, parts.port or 25, timeout=timeout)
        try:
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            _smtp_send(client, msg)
        except BaseException:
            client.close()
            raise
        _quit(client)
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


def _quit(client: smtplib.SMTP) -> None:
    """QUIT after the server accepted the message: whatever it answers now (a 421 from a
    server going down, a dropped connection), the message is delivered, and a retry would
    send it a second time."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("SMTP QUIT after the message was accepted: %s", exc)
    finally:
        client.close()


def _smtp_send(client: smtplib.SMTP, msg: EmailMessage) -> None:
    """client.send_message(msg), with the message flattened by flatten() above. The same
    envelope as send_message takes from the headers; anything but a plain From/To message
    with ASCII addresses (Sender, Cc, Bcc, Resent-*, SMTPUTF8) goes to send_message."""
    if any(name in msg for name in ("Sender", "Cc", "Bcc", "Resent-Date", "Resent-Bcc")):
        client.send_message(msg)
        return
    from_addr = getaddresses([msg["From"]])[0][1]
    to_addrs = [address for _, address in getaddresses([msg["To"]])]
    if not "".join([from_addr, *to_addrs]).isascii():
        client.send_message(msg)
        return
    client.ehlo_or_helo_if_needed()
    client.sendmail(from_addr, to_addrs, flatten(msg))


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


# The outbox kind this slice runs: registered by the application factory
# (alliance.configure_outbox), not by importing this module.
HANDLERS = {"mail": Handler(send_queued_mail)}
