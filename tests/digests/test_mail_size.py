"""A digest fits a mail client whatever its period holds (issue 22): the whole mail as sent
stays under 100 KB, listing the most relevant notes in full (watch-term matches first) and
counting the rest per alliance, each count linking to the feed filtered to that alliance and
the period; the "why you get this" stays. A quiet period's digest lists every note as
before. Mails go out as the other digest tests send them (`digests run`, the outbox, the
test maildir); their size is the bytes SMTP would carry (CRLF line ends)."""
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from alliance.digests import preferences, previews, watch_terms
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import element_text
from tests.digests.helpers import next_run, parts, post, run_digests

ALLIANCES = 12
NOTES = 500
WATCHED = "evil-busy.example"
LEVELS = ("GREEN", "CLEAR", "AMBER", "GREEN", "AMBER+STRICT")
LINK = re.compile(r"http://alliance\.test/notes/\?alliance=\d+&since=[\d-]+&until=[\d-]+")


def _title(n: int) -> str:
    return f"Busy note {n:03d}: " + " ".join(["ransomware campaign against ports"] * 8)[:270]


def _description(n: int) -> str:
    return f"Analysis {n:03d}. " + "Lateral movement through the VPN concentrator. " * 40


def _wire_bytes(mails, user) -> tuple[object, int]:
    """The digest mail to the user and its size as SMTP carries it (the maildir keeps LF)."""
    import mailbox

    box = mailbox.Maildir(mails.path, create=False)
    found = [box.get_bytes(key) for key in box.keys()]
    [raw] = [b for b in found if f"To: {user.email}".encode() in b
             and b"Message-ID: <digest-" in b]
    [mail] = [m for m in mails.to(user, "digest")]
    return mail, len(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


@pytest.fixture
def busy(app, coordinator, alliance, reader):
    """A period of NOTES long notes in ALLIANCES alliances the reader is in, five TLP:RED
    notes addressed to them, and ten GREEN notes carrying a domain the reader watches."""
    alliances = [alliance] + [
        factories.make_alliance(coordinator, slug=f"busy-{i:02d}", name=f"Busy Alliance {i:02d}")
        for i in range(1, ALLIANCES)]
    for a in alliances[1:]:
        factories.add_member(a, reader.organisation, "active")
    watch_terms.add_watch_term(reader, "value", WATCHED)
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    notes = {}
    for n in range(NOTES):
        watched = n % 50 == 7
        level = "GREEN" if watched else LEVELS[n % len(LEVELS)]
        note = post(coordinator, _title(n), level, [alliances[n % ALLIANCES]], _description(n),
                    domain=WATCHED if watched else None, alerts=False)
        notes[note.id] = (note.title, alliances[n % ALLIANCES].id, watched, level)
    for n in range(5):
        post(coordinator, f"Red busy note {n}", "RED", [alliance], "Red secret.",
             recipients=[reader], alerts=False)
    return instant, alliances, notes


def test_a_busy_period_is_one_mail_under_100_kb(app, client, mails, reader, busy):
    instant, alliances, notes = busy
    run_digests(app, instant)

    mail, size = _wire_bytes(mails, reader)
    text, html = parts(mail)
    assert size < 100_000, f"the digest mail is {size} bytes"

    # Every note of the period is in the mail: listed in full, or counted.
    assert f"{NOTES + 5} new notes in {ALLIANCES} alliances" in mail["Subject"]
    listed = {i: v for i, v in notes.items() if v[0] in text}
    assert 10 <= len(listed) < NOTES
    # The most relevant in full: every watch-term match (GREEN: title, summary, the term).
    for title, _, watched, _ in notes.values():
        if watched:
            assert title in text and title in html
    assert f"matches your watch term {WATCHED}" in text
    assert "Lateral movement through the VPN" in text  # a GREEN summary, in full
    # The TLP rules hold: RED only counted, AMBER title and link only.
    assert "5 TLP:RED notes addressed to you" in text and "Red busy note" not in text
    for title, _, _, level in listed.values():
        if level.startswith("AMBER"):
            block = text.split(title, 1)[1].split("\n\n", 1)[0]
            assert "Lateral movement" not in block and "Incident report" not in block

    # The rest counted per alliance, each with a feed link for that alliance and the period;
    # the counts add up to what is not listed.
    rows = re.findall(r"\.\.\. and (\d+) more in (Busy Alliance \d\d|Atlantic Alliance)\.\n"
                      r"  Why: new in \2\n  (\S+)", text)
    assert len(rows) == ALLIANCES
    assert sum(int(count) for count, _, _ in rows) == NOTES - len(listed)
    for count, name, link in rows:
        assert LINK.fullmatch(link)
        assert f"… and {count} more in {name}: <a href=\"{link.replace('&', '&amp;')}\"" in html

    # "Why you get this": per item, per count, and the footer.
    assert text.count("  Why: ") == len(listed) + ALLIANCES
    assert "Why: new in Busy Alliance" in html
    assert "You get this digest because of your preferences" in html
    assert "Unsubscribe from digests and alerts" in text
    assert mail["List-Unsubscribe"] and mail["List-Id"]

    # A count's link, followed as the reader: the feed of that alliance and the period shows
    # that alliance's notes of the period, among them notes the mail only counted.
    count, name, link = rows[-1]
    target = next(a for a in alliances if a.name == name)
    query = parse_qs(urlsplit(link).query)
    assert query["alliance"] == [str(target.id)]
    factories.login(client, reader)
    page = client.get(link.removeprefix("http://alliance.test"))
    assert page.status_code == 200
    body = unescape(page.get_data(as_text=True))
    shown = {i for i, (title, *_) in notes.items() if title in body}
    assert len(shown) == 25  # a full first page
    assert all(notes[i][1] == target.id for i in shown)
    assert shown - set(listed), "the feed shows notes the mail only counted"


def test_the_preview_shows_what_the_mail_carries(app, monkeypatch, as_member, mails, reader,
                                                busy):
    instant, _, notes = busy
    with monkeypatch.context() as patched:
        # The preview as the reader opens it when the digest is due: built at that instant.
        patched.setattr(previews, "utcnow", lambda: instant)
        page = as_member.get("/digests/preview")
        html = as_member.get("/digests/preview.html").get_data(as_text=True)
    assert page.status_code == 200
    found = re.search(r'<pre class="mail-body" id="preview-text" tabindex="0">(.*?)</pre>',
                      page.get_data(as_text=True), re.DOTALL)
    assert found
    preview_text = unescape(found.group(1))
    run_digests(app, instant)
    mail, _ = _wire_bytes(mails, reader)
    text, _ = parts(mail)

    def content(body: str) -> list[str]:  # the unsubscribe link carries a fresh token
        return [line for line in body.splitlines() if "/digests/unsubscribe/" not in line]

    assert content(preview_text) == content(text.rstrip("\n"))
    assert element_text(page.data, "preview-subject") == mail["Subject"]
    token = re.compile(r"/digests/unsubscribe/[^\"\s]+")
    assert token.sub("", html) == token.sub("", parts(mail)[1]).rstrip("\n")
    assert "Not listed here, to keep this mail short" in html
    assert len(LINK.findall(html.replace("&amp;", "&"))) == ALLIANCES


def test_a_quiet_period_lists_every_note_in_full(app, mails, coordinator, alliance, reader):
    instant, _ = next_run(preferences.preferences_of(reader).hour)
    titles = [f"Quiet note {n}" for n in range(5)]
    for n, title in enumerate(titles):
        post(coordinator, title, "GREEN", [alliance], f"Quiet summary {n}.")

    run_digests(app, instant)

    mail, size = _wire_bytes(mails, reader)
    text, html = parts(mail)
    assert size < 20_000
    assert "5 new notes in 1 alliance" in mail["Subject"]
    for n, title in enumerate(titles):
        for part in (text, html):
            assert title in part and f"Quiet summary {n}." in part
    assert text.count("Why: new in Atlantic Alliance") == 5
    assert "more" not in text and "Not listed here" not in html
    assert text.index("Quiet note 4") < text.index("Quiet note 0")  # newest first


def test_the_coordinators_preview_fits_too(app, as_coordinator, coordinator, alliance,
                                          reader, busy):
    for n in range(NOTES, NOTES + 250):  # a busy day in Atlantic alone
        post(coordinator, _title(n), "GREEN", [alliance], _description(n), alerts=False)
    db.session.expire_all()
    page = as_coordinator.get(f"/digests/alliance/atlantic/preview.html?user_id={reader.id}"
                              "&period=day")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert len(html.encode()) < 100_000
    assert "… and " in html and "more in Atlantic Alliance" in html
    assert "Busy Alliance" not in html  # narrowed to the coordinator's alliance
