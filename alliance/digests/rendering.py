"""Rendering a digest: its subject, its text and HTML parts (autoescaped, from
templates/emails/), and the links and List-Unsubscribe headers every digest and alert
carries. A digest mail stays under MAIL_BYTES whatever the period holds."""
from datetime import date, datetime
from zoneinfo import ZoneInfo

from alliance.core.urls import external_url
from alliance.digests.content import Digest, Item
from alliance.digests.preferences import unsubscribe_token
from alliance.mail.services import build_message, deterministic_message_id, flatten, render_mail


def digest_subject(digest: Digest, local_day: date, test: bool = False) -> str:
    """"[TLP:AMBER] CyberPeace digest — 3 new notes in 1 alliance (Mon 2 Mar)"; a test mail
    says so right after the TLP tag (which mail filters read first)."""
    n, k = digest.count, digest.alliance_count
    where = f" in {k} alliance{'s' if k != 1 else ''}" if k else ""
    day = f"{local_day:%a} {local_day.day} {local_day:%b}"
    return (f"[TLP:{digest.strictest}] {'[TEST] ' if test else ''}CyberPeace digest — "
            f"{n} new note{'s' if n != 1 else ''}{where} ({day})")


# Links in mails come from BASE_URL (alliance.core.urls): a worker or the CLI has no request
# to build them from, and a web request's Host header is the client's to choose.

def list_headers(unsubscribe_url: str) -> dict:
    """The one-click unsubscribe headers, with the link the mail's body carries (a token is
    dated when made: make it once per mail, member_links, and pass its link here)."""
    link = unsubscribe_url
    return {"List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def member_links(user) -> dict:
    return {"unsubscribe_url": external_url("digests.unsubscribe",
                                            token=unsubscribe_token(user)),
            "preferences_url": external_url("digests.preferences"),
            "red_url": external_url("notes.feed", tlp="RED"),
            "feed_url": external_url("notes.feed")}


# The whole mail as sent (headers, text and HTML parts and the MIME structure around them,
# CRLF line ends) stays under this, whatever the period holds: Gmail clips a mail past about
# 102 KB, and phones struggle with more. A longer digest lists fewer items in full.
MAIL_BYTES = 100_000
# Room for what the measure cannot know exactly: the Date and Message-ID of the very send.
MAIL_MARGIN = 1_000
# Encoded bytes a counted row may add when an item is no longer listed (its group's row).
_ROW_BYTES = 1_200


def _mail_bytes(user, subject: str, text: str, html: str, headers: dict) -> int:
    """The size of the digest mail as it goes out: built and flattened as
    delivery.build_delivery_mail and send_message build and send it, with a Message-ID at
    least as long as any digest's."""
    message_id = deterministic_message_id(
        f"test-digest-{user.id}-until.0000-00-00T00.00.00Z-{'0' * 12}")
    try:
        return len(flatten(build_message(user.email, subject, text, html, message_id,
                                         headers=headers)))
    except ValueError:  # an address the mail cannot be built for: never sent anyway
        return 2 * (len(text.encode()) + len(html.encode())) + 4_000


def _item_bytes(item: Item) -> int:
    """What a listed item weighs in the mail: its text and HTML, base64-encoded (4/3, and
    a CRLF per 76 characters)."""
    return (len(item.text_block.encode()) + len(item.html_block.encode())) * 78 // 57


def _items_to_drop(digest: Digest, over: int) -> int:
    """How many of the least relevant listed items to count instead, to free `over` bytes
    (and the row their group's count may need)."""
    freed, drop = 0, 0
    for _, item in reversed(digest.ranked[:digest.shown]):
        if freed >= over + _ROW_BYTES and drop:
            break
        freed += _item_bytes(item)
        drop += 1
    return max(drop, 1)


def render_digest(digest: Digest, local_day: date, links: dict | None = None,
                  test_of: datetime | None = None) -> tuple[str, str, str]:
    """(subject, text, html) of a digest; both bodies autoescaped. `links` replaces the
    recipient's own links (a coordinator's preview must not carry their unsubscribe token).
    `test_of`: a test mail of the digest due then (local time), marked as a test.

    The mail stays under MAIL_BYTES: rendered, measured as sent (the recipient's headers
    included), and while too large rendered again with fewer items in full (the least
    relevant counted instead, Digest.show). Every path renders through here (the mail, the
    test mail, the member's preview, the coordinator's), so each shows what the mail
    carries. The digest is left as shown (its groups, counted rows and subject)."""
    links = links or digest.links or member_links(digest.user)
    digest.links = links  # the mail is built with the same links (delivery, test mail)
    headers = list_headers(links["unsubscribe_url"])
    budget = MAIL_BYTES - MAIL_MARGIN
    # A first guess from the items' own sizes, so that a busy period is not rendered whole
    # first (the loop below corrects it with the real mail's size).
    total, fits = 0, 0
    for _, item in digest.ranked[:digest.shown]:
        total += _item_bytes(item)
        if total > budget:
            digest.show(fits)
            break
        fits += 1
    rows = None
    while True:
        subject = digest_subject(digest, local_day, test=test_of is not None)
        text, html = render_mail("digest", digest=digest, subject=subject,
                                 local_day=local_day, test_of=test_of, **links)
        size = _mail_bytes(digest.user, subject, text, html, headers)
        if size <= budget:
            break
        if digest.shown:
            digest.show(digest.shown - _items_to_drop(digest, size - budget), rows)
        elif len(digest.counted) > 1:
            # No item listed and still too long: the reader is in very many alliances.
            # The rows with the fewest notes go into one row for the feed of the period.
            rows = len(digest.counted) // 2
            digest.show(0, rows)
        else:
            break  # headers and counts only: cannot be smaller
    return subject, text, html


def local_day(instant: datetime, zone: str) -> date:
    """The day of `instant` on the user's clock: the day a digest's subject names."""
    try:
        return instant.astimezone(ZoneInfo(zone)).date()
    except (ValueError, OSError):  # a zone gone from the tz database: the UTC day
        return instant.date()
