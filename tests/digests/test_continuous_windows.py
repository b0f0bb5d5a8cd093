"""A digest's window carries on from where the user's last digest's window ended: after a
change of delivery hour, zone, weekday or frequency no note falls between two digests and
none is mailed twice. Digests that were off for more than a week start afresh, not with a
backlog."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from alliance.digests import preferences
from alliance.extensions import db
from alliance.notes.models import Note
from tests.digests.helpers import Mailbox, ledger, parts, post, run_digests

DAY = datetime(2026, 1, 14, tzinfo=UTC)  # a Wednesday, no DST anywhere near in UTC


@pytest.fixture
def mails(app):
    return Mailbox(app.config["MAIL_URL"])


def _posted_at(note, when: datetime) -> None:
    db.session.execute(update(Note).where(Note.id == note.id).values(created_at=when))
    db.session.commit()


def _carrying(mails, user, title: str) -> int:
    return sum(title in parts(m)[0] for m in mails.to(user, "digest"))


def test_a_note_posted_before_the_delivery_hour_is_moved_later_is_in_the_next_digest(
        app, mails, coordinator, alliance, member):
    """Daily at 08:00, moved to 20:00 after the 14th's digest: by the new hour the period
    closing on the 14th at 20:00 would start on the 13th at 20:00; the digest's window starts
    where the last one ended instead, so a note of the 14th at 12:00 is in exactly one."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    run_digests(app, DAY + timedelta(hours=8, minutes=5))
    preferences.save_preferences(member, frequency="daily", hour=20, timezone="UTC")
    _posted_at(post(coordinator, "Midday note", "GREEN", [alliance]), DAY + timedelta(hours=12))
    for days in (0, 1, 2):
        run_digests(app, DAY + timedelta(days=days, hours=20, minutes=5))

    assert _carrying(mails, member, "Midday note") == 1
    windows = [(r.window_start, r.window_end) for r in ledger(member, "digest")]
    assert all(later[0] == earlier[1] for earlier, later in zip(windows, windows[1:],
                                                                  strict=False)), windows


def test_a_note_is_not_mailed_again_when_the_delivery_hour_is_moved_earlier(
        app, mails, coordinator, alliance, member):
    """Daily at 20:00, moved to 08:00: the next period by the new hour starts on the 14th at
    08:00, before the last digest's window ended."""
    preferences.save_preferences(member, frequency="daily", hour=20, timezone="UTC")
    _posted_at(post(coordinator, "Midday note", "GREEN", [alliance]), DAY + timedelta(hours=12))
    run_digests(app, DAY + timedelta(hours=20, minutes=5))
    assert _carrying(mails, member, "Midday note") == 1

    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    _posted_at(post(coordinator, "Evening note", "GREEN", [alliance]), DAY + timedelta(hours=22))
    run_digests(app, DAY + timedelta(days=1, hours=8, minutes=5))

    assert _carrying(mails, member, "Midday note") == 1
    assert _carrying(mails, member, "Evening note") == 1
    first, second = ledger(member, "digest")
    assert second.window_start == first.window_end


def test_a_zone_change_leaves_no_gap(app, mails, coordinator, alliance, member):
    """From the far east of the date line to the far west at the same local hour: by the new
    zone the next period starts about a day after the last digest's window ended."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="Pacific/Kiritimati")
    sent_at = datetime(2026, 1, 13, 18, 5, tzinfo=UTC)  # 08:05 on the 14th in Kiritimati
    run_digests(app, sent_at)
    [first] = ledger(member, "digest")
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="Pacific/Pago_Pago")
    _posted_at(post(coordinator, "Between zones", "GREEN", [alliance]),
               sent_at + timedelta(hours=12))
    for hours in (24, 48, 72):
        run_digests(app, sent_at + timedelta(hours=hours))

    assert _carrying(mails, member, "Between zones") == 1
    assert ledger(member, "digest")[1].window_start == first.window_end


def test_digests_off_for_more_than_a_week_start_afresh(app, mails, coordinator, alliance,
                                                       member):
    """Turned off after the 14th's digest and on again nine days later: the next digest
    carries its own day, not the nine days before it (alliance.digests.scheduling.MAX_CATCH_UP)."""
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    run_digests(app, DAY + timedelta(hours=8, minutes=5))
    preferences.save_preferences(member, frequency="off", hour=8, timezone="UTC")
    _posted_at(post(coordinator, "While off", "GREEN", [alliance]), DAY + timedelta(days=2))
    back = DAY + timedelta(days=9, hours=8, minutes=1)
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    _posted_at(post(coordinator, "Back on", "GREEN", [alliance]), back - timedelta(hours=2))
    run_digests(app, back)

    assert _carrying(mails, member, "Back on") == 1
    assert _carrying(mails, member, "While off") == 0
    assert ledger(member, "digest")[-1].window_start == DAY + timedelta(days=8, hours=8)
