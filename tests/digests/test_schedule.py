"""Digest schedule: delivery instants, periods that tile time across DST, due periods, zones.

Expected UTC instants are written by hand from the zones' known offsets and the 2026 change
dates (checked against `zdump -v -c 2026,2027 <zone>`):
  Europe/Berlin     CET +1 / CEST +2; 2026-03-29 02:00->03:00, 2026-10-25 03:00->02:00
  America/New_York  EST -5 / EDT -4;  2026-03-08 02:00->03:00, 2026-11-01 02:00->01:00
  Asia/Kolkata      +05:30, no DST
  Pacific/Chatham   +12:45 / +13:45;  2026-04-05 03:45->02:45, 2026-09-27 02:45->03:45
  America/Havana    CST -5 / CDT -4;  2026-03-08 00:00->01:00, 2026-11-01 01:00->00:00
  America/Santiago  -04 / -03;        2026-04-05 00:00->04-04 23:00, 2026-09-06 00:00->01:00
  Asia/Beirut       EET +2 / EEST +3; 2026-03-29 00:00->01:00, 2026-10-25 00:00->10-24 23:00
"""
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alliance.digests import schedule
from alliance.digests.schedule import (
    Period,
    current_period,
    delivery_instant,
    next_period,
    timezone_for_country,
    valid_timezones,
)

US = timedelta(microseconds=1)
H = timedelta(hours=1)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def wall(instant, tz):
    return instant.astimezone(tz).replace(tzinfo=None)


# --- delivery_instant ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "hour", "expected"),
    [
        # Berlin 08:00 around both 2026 changes.
        ("Europe/Berlin", date(2026, 3, 27), 8, utc(2026, 3, 27, 7)),
        ("Europe/Berlin", date(2026, 3, 28), 8, utc(2026, 3, 28, 7)),
        ("Europe/Berlin", date(2026, 3, 29), 8, utc(2026, 3, 29, 6)),
        ("Europe/Berlin", date(2026, 3, 30), 8, utc(2026, 3, 30, 6)),
        ("Europe/Berlin", date(2026, 10, 24), 8, utc(2026, 10, 24, 6)),
        ("Europe/Berlin", date(2026, 10, 25), 8, utc(2026, 10, 25, 7)),
        ("Europe/Berlin", date(2026, 10, 26), 8, utc(2026, 10, 26, 7)),
        # Berlin: 02:00 on 03-29 does not exist -> 03:00 CEST; 02:00 on 10-25 twice -> CEST one.
        ("Europe/Berlin", date(2026, 3, 29), 2, utc(2026, 3, 29, 1)),
        ("Europe/Berlin", date(2026, 10, 25), 2, utc(2026, 10, 25, 0)),
        # New York.
        ("America/New_York", date(2026, 3, 7), 8, utc(2026, 3, 7, 13)),
        ("America/New_York", date(2026, 3, 8), 8, utc(2026, 3, 8, 12)),
        ("America/New_York", date(2026, 10, 31), 8, utc(2026, 10, 31, 12)),
        ("America/New_York", date(2026, 11, 1), 8, utc(2026, 11, 1, 13)),
        ("America/New_York", date(2026, 3, 8), 2, utc(2026, 3, 8, 7)),  # gap: 03:00 EDT
        ("America/New_York", date(2026, 3, 8), 1, utc(2026, 3, 8, 6)),  # 01:00 EST, exists
        ("America/New_York", date(2026, 3, 8), 3, utc(2026, 3, 8, 7)),  # 03:00 EDT, exists
        ("America/New_York", date(2026, 11, 1), 1, utc(2026, 11, 1, 5)),  # twice: EDT first
        ("America/New_York", date(2026, 11, 1), 2, utc(2026, 11, 1, 7)),  # 02:00 EST, once
        # Kolkata +05:30: hour 0 is the previous UTC day.
        ("Asia/Kolkata", date(2026, 3, 29), 8, utc(2026, 3, 29, 2, 30)),
        ("Asia/Kolkata", date(2026, 3, 29), 0, utc(2026, 3, 28, 18, 30)),
        ("Asia/Kolkata", date(2026, 3, 29), 23, utc(2026, 3, 29, 17, 30)),
        # Kathmandu +05:45.
        ("Asia/Kathmandu", date(2026, 7, 1), 9, utc(2026, 7, 1, 3, 15)),
        # Chatham: 08:00 at +13:45 until 04-05, then +12:45; again +13:45 from 09-27.
        ("Pacific/Chatham", date(2026, 4, 4), 8, utc(2026, 4, 3, 18, 15)),
        ("Pacific/Chatham", date(2026, 4, 5), 8, utc(2026, 4, 4, 19, 15)),
        ("Pacific/Chatham", date(2026, 9, 26), 8, utc(2026, 9, 25, 19, 15)),
        ("Pacific/Chatham", date(2026, 9, 27), 8, utc(2026, 9, 26, 18, 15)),
        # Chatham: 03:00 on 04-05 happens twice (03:45 -> 02:45): the +13:45 one.
        ("Pacific/Chatham", date(2026, 4, 5), 3, utc(2026, 4, 4, 13, 15)),
        # Chatham: 03:00 on 09-27 is in the gap 02:45 -> 03:45: the jump itself, 03:45 +13:45.
        ("Pacific/Chatham", date(2026, 9, 27), 3, utc(2026, 9, 26, 14)),
        ("Pacific/Chatham", date(2026, 9, 27), 2, utc(2026, 9, 26, 13, 15)),  # 02:00 +12:45
        ("Pacific/Chatham", date(2026, 9, 27), 4, utc(2026, 9, 26, 14, 15)),  # 04:00 +13:45
        # Changes at midnight: hour 0 missing or doubled on the change day.
        ("America/Havana", date(2026, 3, 8), 0, utc(2026, 3, 8, 5)),  # gap: 01:00 CDT
        ("America/Havana", date(2026, 3, 7), 0, utc(2026, 3, 7, 5)),  # 00:00 CST
        ("America/Havana", date(2026, 11, 1), 0, utc(2026, 11, 1, 4)),  # twice: CDT first
        ("America/Santiago", date(2026, 9, 6), 0, utc(2026, 9, 6, 4)),  # gap: 01:00 -03
        ("America/Santiago", date(2026, 4, 4), 23, utc(2026, 4, 5, 2)),  # twice: -03 first
        ("America/Santiago", date(2026, 4, 5), 0, utc(2026, 4, 5, 4)),  # 00:00 -04, once
        ("Asia/Beirut", date(2026, 3, 29), 0, utc(2026, 3, 28, 22)),  # gap: 01:00 EEST
        ("Asia/Beirut", date(2026, 10, 24), 23, utc(2026, 10, 24, 20)),  # twice: EEST first
        ("UTC", date(2026, 3, 29), 0, utc(2026, 3, 29)),
        # Gaps that do not start on a whole hour or span several: the first instant after the
        # gap, not the wall time shifted by the gap. Troll jumps 01:00 -> 03:00 (+00 -> +02).
        ("Antarctica/Troll", date(2026, 3, 29), 2, utc(2026, 3, 29, 1)),  # 03:00 +02
        # Lord Howe jumps 02:00 -> 02:30 (+10:30 -> +11) on 2026-10-04.
        ("Australia/Lord_Howe", date(2026, 10, 4), 2, utc(2026, 10, 3, 15, 30)),
        # Casey jumped 00:01 -> 03:01 (+08 -> +11) on 2020-10-04: hours 1-3 all at 03:01.
        ("Antarctica/Casey", date(2020, 10, 4), 1, utc(2020, 10, 3, 16, 1)),
        ("Antarctica/Casey", date(2020, 10, 4), 3, utc(2020, 10, 3, 16, 1)),
        ("Antarctica/Casey", date(2020, 10, 4), 4, utc(2020, 10, 3, 17)),
    ],
)
def test_delivery_instant(zone, day, hour, expected):
    got = delivery_instant(day, hour, ZoneInfo(zone))
    assert got == expected
    assert got.utcoffset() == timedelta(0)


def test_delivery_instant_for_a_day_that_did_not_exist():
    # Samoa skipped 2011-12-30 (23:59:59 on the 29th at -10 was followed by 00:00 on the 31st
    # at +14): every hour of the 30th is delivered when the 31st begins.
    apia = ZoneInfo("Pacific/Apia")
    assert delivery_instant(date(2011, 12, 30), 8, apia) == utc(2011, 12, 30, 10)
    assert delivery_instant(date(2011, 12, 31), 0, apia) == utc(2011, 12, 30, 10)
    # The period of the 31st at hour 0 therefore starts at the 29th's delivery (00:00 -10).
    period = current_period(utc(2011, 12, 30, 12), "daily", 0, "Pacific/Apia")
    assert period == Period("daily:2011-12-31", utc(2011, 12, 29, 10), utc(2011, 12, 30, 10),
                            date(2011, 12, 31))


# --- daily periods ---------------------------------------------------------------------------


def test_berlin_daily_periods_tile_across_spring_forward():
    ends = {
        date(2026, 3, 27): utc(2026, 3, 27, 7),
        date(2026, 3, 28): utc(2026, 3, 28, 7),
        date(2026, 3, 29): utc(2026, 3, 29, 6),
        date(2026, 3, 30): utc(2026, 3, 30, 6),
        date(2026, 3, 31): utc(2026, 3, 31, 6),
    }
    lengths = {date(2026, 3, 28): 24 * H, date(2026, 3, 29): 23 * H, date(2026, 3, 30): 24 * H,
               date(2026, 3, 31): 24 * H}
    for day, length in lengths.items():
        end = ends[day]
        period = current_period(end + 5 * H, "daily", 8, "Europe/Berlin")
        assert period == Period(f"daily:{day.isoformat()}", ends[day - timedelta(days=1)], end, day)
        assert period.end - period.start == length


def test_berlin_daily_periods_tile_across_fall_back():
    ends = {
        date(2026, 10, 23): utc(2026, 10, 23, 6),
        date(2026, 10, 24): utc(2026, 10, 24, 6),
        date(2026, 10, 25): utc(2026, 10, 25, 7),
        date(2026, 10, 26): utc(2026, 10, 26, 7),
    }
    lengths = {date(2026, 10, 24): 24 * H, date(2026, 10, 25): 25 * H, date(2026, 10, 26): 24 * H}
    for day, length in lengths.items():
        period = current_period(ends[day], "daily", 8, "Europe/Berlin")
        assert period.key == f"daily:{day.isoformat()}"
        assert (period.start, period.end) == (ends[day - timedelta(days=1)], ends[day])
        assert period.end - period.start == length


def test_delivery_instant_is_inclusive_end_and_exclusive_start():
    at = utc(2026, 3, 29, 6)  # Berlin 08:00 CEST
    assert current_period(at, "daily", 8, "Europe/Berlin").key == "daily:2026-03-29"
    before = current_period(at - US, "daily", 8, "Europe/Berlin")
    assert before.key == "daily:2026-03-28"
    assert before.end == utc(2026, 3, 28, 7)
    assert current_period(at - US, "daily", 8, "Europe/Berlin").end == before.end


def step_through(start, stop, every, *args):
    """now from start to stop: (distinct keys in order, [(instant the key changed, period)])."""
    keys, changes = [], []
    previous = None
    now = start
    while now <= stop:
        period = current_period(now, *args)
        if previous is not None and period.key != previous.key:
            changes.append((now, period))
            assert period.start == previous.end  # no gap, no overlap
        if not keys or keys[-1] != period.key:
            keys.append(period.key)
        assert period.start < period.end <= now
        previous = period
        now += every
    return keys, changes


@pytest.mark.parametrize(
    ("start", "expected_changes"),
    [
        (
            utc(2026, 3, 25),
            [utc(2026, 3, 25, 7), utc(2026, 3, 26, 7), utc(2026, 3, 27, 7), utc(2026, 3, 28, 7),
             utc(2026, 3, 29, 6), utc(2026, 3, 30, 6), utc(2026, 3, 31, 6)],
        ),
        (
            utc(2026, 10, 21),
            [utc(2026, 10, 21, 6), utc(2026, 10, 22, 6), utc(2026, 10, 23, 6), utc(2026, 10, 24, 6),
             utc(2026, 10, 25, 7), utc(2026, 10, 26, 7), utc(2026, 10, 27, 7)],
        ),
    ],
)
def test_berlin_week_in_five_minute_steps_has_one_period_per_day(start, expected_changes):
    keys, changes = step_through(start, start + timedelta(days=7) - US, timedelta(minutes=5),
                                 "daily", 8, "Europe/Berlin")
    first_day = start.date() - timedelta(days=1)
    assert keys == [f"daily:{(first_day + timedelta(days=n)).isoformat()}" for n in range(8)]
    assert [instant for instant, _ in changes] == expected_changes
    for instant, period in changes:
        assert period.end == instant
        assert wall(instant, ZoneInfo("Europe/Berlin")).time() == time(8)


def test_new_york_delivery_hour_inside_the_gap_and_the_repeated_hour():
    # 02:00 does not exist on 2026-03-08: delivered at 03:00 EDT = 07:00Z; the day before at
    # 02:00 EST = 07:00Z too (a 24h window), the day after at 02:00 EDT = 06:00Z (23h).
    keys, changes = step_through(utc(2026, 3, 6), utc(2026, 3, 11), timedelta(minutes=5),
                                 "daily", 2, "America/New_York")
    assert [instant for instant, _ in changes] == [
        utc(2026, 3, 6, 7), utc(2026, 3, 7, 7), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6),
        utc(2026, 3, 10, 6),
    ]
    assert [period.end - period.start for _, period in changes] == [24 * H, 24 * H, 24 * H, 23 * H,
                                                                   24 * H]
    assert keys[-1] == "daily:2026-03-10"
    # 01:00 happens twice on 2026-11-01: delivered once, at the first (EDT, 05:00Z).
    keys, changes = step_through(utc(2026, 10, 30), utc(2026, 11, 3), timedelta(minutes=5),
                                 "daily", 1, "America/New_York")
    assert [instant for instant, _ in changes] == [
        utc(2026, 10, 30, 5), utc(2026, 10, 31, 5), utc(2026, 11, 1, 5), utc(2026, 11, 2, 6),
    ]
    assert keys == ["daily:2026-10-29", "daily:2026-10-30", "daily:2026-10-31", "daily:2026-11-01",
                    "daily:2026-11-02"]
    assert [period.end - period.start for _, period in changes] == [24 * H, 24 * H, 24 * H, 25 * H]
    # The second 01:00 (EST, 06:00Z) is inside the period of 11-01, not a new one.
    assert current_period(utc(2026, 11, 1, 6), "daily", 1, "America/New_York").key == (
        "daily:2026-11-01")


def test_new_york_daily_8am_around_both_changes():
    spring = current_period(utc(2026, 3, 8, 12), "daily", 8, "America/New_York")
    assert (spring.start, spring.end) == (utc(2026, 3, 7, 13), utc(2026, 3, 8, 12))
    autumn = current_period(utc(2026, 11, 1, 13), "daily", 8, "America/New_York")
    assert (autumn.start, autumn.end) == (utc(2026, 10, 31, 12), utc(2026, 11, 1, 13))
    assert current_period(utc(2026, 11, 1, 13) - US, "daily", 8, "America/New_York").key == (
        "daily:2026-10-31")


def test_kolkata_half_hour_offset_and_local_date_key():
    # 00:30Z on 2026-03-29 is 06:00 IST: the 08:00 delivery of the 29th has not happened.
    period = current_period(utc(2026, 3, 29, 0, 30), "daily", 8, "Asia/Kolkata")
    assert period == Period("daily:2026-03-28", utc(2026, 3, 27, 2, 30), utc(2026, 3, 28, 2, 30),
                            date(2026, 3, 28))
    # Hour 0: 18:30Z on the 28th is midnight of the 29th in Kolkata.
    period = current_period(utc(2026, 3, 28, 18, 30), "daily", 0, "Asia/Kolkata")
    assert period.key == "daily:2026-03-29"
    assert period.end == utc(2026, 3, 28, 18, 30)
    assert period.end - period.start == 24 * H
    assert current_period(utc(2026, 3, 28, 18, 29), "daily", 0, "Asia/Kolkata").key == (
        "daily:2026-03-28")


def test_chatham_daily_around_its_2026_changes():
    keys, changes = step_through(utc(2026, 4, 2), utc(2026, 4, 7), timedelta(minutes=5),
                                 "daily", 8, "Pacific/Chatham")
    assert [instant for instant, _ in changes] == [
        utc(2026, 4, 2, 18, 15), utc(2026, 4, 3, 18, 15), utc(2026, 4, 4, 19, 15),
        utc(2026, 4, 5, 19, 15), utc(2026, 4, 6, 19, 15),
    ]
    assert [period.end - period.start for _, period in changes] == [24 * H, 24 * H, 25 * H, 24 * H,
                                                                   24 * H]
    assert changes[2][1].key == "daily:2026-04-05"
    keys, changes = step_through(utc(2026, 9, 24), utc(2026, 9, 29), timedelta(minutes=5),
                                 "daily", 3, "Pacific/Chatham")
    # 03:00 at +12:45 is 14:15Z the day before; on 09-27 it falls in the gap -> 03:45 +13:45.
    assert [instant for instant, _ in changes] == [
        utc(2026, 9, 24, 14, 15), utc(2026, 9, 25, 14, 15), utc(2026, 9, 26, 14),
        utc(2026, 9, 27, 13, 15), utc(2026, 9, 28, 13, 15),
    ]
    assert [period.end - period.start for _, period in changes] == [
        24 * H, 24 * H, 23 * H + timedelta(minutes=45), 23 * H + timedelta(minutes=15), 24 * H]
    assert changes[2][1].local_date == date(2026, 9, 27)


def test_hour_zero_on_a_midnight_change_day():
    # Havana jumps 00:00 -> 01:00 on 2026-03-08: hour 0 is delivered at 01:00 CDT.
    period = current_period(utc(2026, 3, 8, 5), "daily", 0, "America/Havana")
    assert period == Period("daily:2026-03-08", utc(2026, 3, 7, 5), utc(2026, 3, 8, 5),
                            date(2026, 3, 8))
    following = current_period(utc(2026, 3, 9, 4), "daily", 0, "America/Havana")
    assert (following.start, following.end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    # Santiago goes back from 00:00 on 04-05 to 23:00 on 04-04: one delivery for each date.
    keys, changes = step_through(utc(2026, 4, 3), utc(2026, 4, 7), timedelta(minutes=5),
                                 "daily", 23, "America/Santiago")
    assert [instant for instant, _ in changes] == [
        utc(2026, 4, 3, 2), utc(2026, 4, 4, 2), utc(2026, 4, 5, 2), utc(2026, 4, 6, 3),
    ]
    assert keys == ["daily:2026-04-01", "daily:2026-04-02", "daily:2026-04-03", "daily:2026-04-04",
                    "daily:2026-04-05"]
    assert [period.end - period.start for _, period in changes] == [24 * H, 24 * H, 24 * H, 25 * H]
    # Beirut: hour 0 missing on 03-29 (delivered 01:00 EEST = 22:00Z on the 28th).
    period = current_period(utc(2026, 3, 29, 12), "daily", 0, "Asia/Beirut")
    assert (period.key, period.start, period.end) == (
        "daily:2026-03-29", utc(2026, 3, 27, 22), utc(2026, 3, 28, 22))


# --- weekly periods --------------------------------------------------------------------------


def test_weekly_monday_9am_berlin():
    spring = current_period(utc(2026, 4, 1, 12), "weekly", 9, "Europe/Berlin", weekday=0)
    assert spring == Period("weekly:2026-03-30", utc(2026, 3, 23, 8), utc(2026, 3, 30, 7),
                            date(2026, 3, 30))
    assert spring.end - spring.start == 7 * 24 * H - H
    autumn = current_period(utc(2026, 10, 26, 8), "weekly", 9, "Europe/Berlin", weekday=0)
    assert autumn == Period("weekly:2026-10-26", utc(2026, 10, 19, 7), utc(2026, 10, 26, 8),
                            date(2026, 10, 26))
    assert autumn.end - autumn.start == 7 * 24 * H + H
    plain = current_period(utc(2026, 6, 10), "weekly", 9, "Europe/Berlin", weekday=0)
    assert (plain.key, plain.end - plain.start) == ("weekly:2026-06-08", 7 * 24 * H)
    # Sunday 23:59 local is still last Monday's period.
    assert current_period(utc(2026, 6, 14, 21, 59), "weekly", 9, "Europe/Berlin", 0).key == (
        "weekly:2026-06-08")


def test_weekly_key_changes_only_on_mondays_at_the_hour():
    keys, changes = step_through(utc(2026, 3, 16), utc(2026, 4, 14), timedelta(minutes=15),
                                 "weekly", 9, "Europe/Berlin", 0)
    assert [instant for instant, _ in changes] == [
        utc(2026, 3, 16, 8), utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), utc(2026, 4, 6, 7),
        utc(2026, 4, 13, 7),
    ]
    assert keys == ["weekly:2026-03-09", "weekly:2026-03-16", "weekly:2026-03-23",
                    "weekly:2026-03-30", "weekly:2026-04-06", "weekly:2026-04-13"]
    for _, period in changes:
        assert period.local_date.weekday() == 0


def test_weekly_on_sunday_uses_local_weekday():
    # 2026-03-28 23:30Z is Sunday 2026-03-29 08:30 in Kolkata; Sunday is weekday 6.
    period = current_period(utc(2026, 3, 29, 2, 30), "weekly", 8, "Asia/Kolkata", weekday=6)
    assert period.key == "weekly:2026-03-29"
    assert period.start == utc(2026, 3, 22, 2, 30)
    earlier = current_period(utc(2026, 3, 29, 2, 29), "weekly", 8, "Asia/Kolkata", weekday=6)
    assert earlier.key == "weekly:2026-03-22"


# --- next_period -----------------------------------------------------------------------------


def test_next_period_is_the_current_one_until_it_is_covered():
    now = utc(2026, 3, 29, 12)
    current = current_period(now, "daily", 8, "Europe/Berlin")
    assert next_period(now, "daily", 8, "Europe/Berlin") == current
    assert next_period(now, "daily", 8, "Europe/Berlin", covered_until=current.start) == current
    # Missed days: only the current period (the caller decides where its window starts).
    assert next_period(now, "daily", 8, "Europe/Berlin",
                       covered_until=current.start - 4 * 24 * H) == current
    covered = next_period(now, "daily", 8, "Europe/Berlin", covered_until=current.end)
    assert (covered.key, covered.start, covered.end) == (
        "daily:2026-03-30", current.end, utc(2026, 3, 30, 6))
    assert next_period(now, "off", 8, "Europe/Berlin", covered_until=current.end) is None


def test_moving_the_hour_later_the_same_day_makes_a_window_of_its_own_that_day():
    """08:00's digest (empty or not) went out; the hour moves to 23:00 at 10:00. The day's
    23:00 period ends after what is covered: it is next, that day, not the day after (the
    day's content is not skipped, the promise of "23:00 today" holds)."""
    covered = utc(2026, 6, 10, 6)  # 08:00 CEST
    now = utc(2026, 6, 10, 8)      # 10:00 CEST
    upcoming = next_period(now, "daily", 23, "Europe/Berlin", covered_until=covered)
    assert upcoming.end == utc(2026, 6, 10, 21) and upcoming.local_date == date(2026, 6, 10)
    assert next_period(utc(2026, 6, 10, 21, 5), "daily", 23, "Europe/Berlin",
                       covered_until=covered).end == upcoming.end


def test_moving_the_hour_earlier_never_builds_a_covered_window_again():
    """20:00's digest went out; the hour moves to 08:00. Today's 08:00 period is covered,
    so the next is tomorrow's; a covered_until ahead of now (a run for a later instant)
    is honoured too."""
    covered = utc(2026, 6, 10, 18)  # 20:00 CEST
    now = utc(2026, 6, 10, 19)
    assert next_period(now, "daily", 8, "Europe/Berlin", covered_until=covered).end == (
        utc(2026, 6, 11, 6))
    ahead = utc(2026, 6, 12, 6)
    assert next_period(now, "daily", 8, "Europe/Berlin", covered_until=ahead).end == (
        utc(2026, 6, 13, 6))
    # From daily to weekly on Mondays after Wednesday's daily went out.
    assert next_period(now, "weekly", 9, "Europe/Berlin", 0, covered_until=covered).end == (
        utc(2026, 6, 15, 7))
    assert next_period(utc(2026, 6, 15, 8), "weekly", 9, "Europe/Berlin", 0,
                       covered_until=covered).key == "weekly:2026-06-15"


def test_moving_the_hour_to_midnight_makes_the_passed_midnight_due_now():
    """Daily at 08:00, last window ended yesterday at 08:00; at 02:00 the hour moves to 00:00.
    Today's midnight has passed and is not covered: it is due now, not tomorrow."""
    now = utc(2026, 1, 14, 2)
    upcoming = next_period(now, "daily", 0, "UTC", covered_until=utc(2026, 1, 13, 8))
    assert upcoming.end == utc(2026, 1, 14) <= now


def test_next_period_refuses_a_naive_covered_until():
    with pytest.raises(ValueError, match="aware"):
        next_period(utc(2026, 1, 14), "daily", 8, "UTC", covered_until=datetime(2026, 1, 14))


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((utc(2026, 1, 1), "hourly", 8, "UTC"), "frequency"),
        ((utc(2026, 1, 1), "Daily", 8, "UTC"), "frequency"),
        ((utc(2026, 1, 1), "daily", 24, "UTC"), "hour"),
        ((utc(2026, 1, 1), "daily", -1, "UTC"), "hour"),
        ((utc(2026, 1, 1), "daily", 8.0, "UTC"), "hour"),
        ((utc(2026, 1, 1), "daily", True, "UTC"), "hour"),
        ((utc(2026, 1, 1), "daily", 8, "Mars/Olympus_Mons"), "time zone"),
        ((utc(2026, 1, 1), "daily", 8, ""), "time zone"),
        ((utc(2026, 1, 1), "daily", 8, "Europe"), "time zone"),
        ((utc(2026, 1, 1), "daily", 8, "../../etc/passwd"), "time zone"),
        ((utc(2026, 1, 1), "daily", 8, None), "time zone"),
        ((utc(2026, 1, 1), "weekly", 8, "UTC"), "weekday"),
        ((utc(2026, 1, 1), "weekly", 8, "UTC", 7), "weekday"),
        ((utc(2026, 1, 1), "weekly", 8, "UTC", -1), "weekday"),
        ((datetime(2026, 1, 1), "daily", 8, "UTC"), "aware"),
        ((utc(2026, 1, 1), "off", 99, "UTC"), "hour"),
    ],
)
def test_invalid_input_raises_value_error(args, message):
    with pytest.raises(ValueError, match=message):
        current_period(*args)
    with pytest.raises(ValueError, match=message):
        next_period(*args)


def test_delivery_instant_validates_hour():
    with pytest.raises(ValueError, match="hour"):
        delivery_instant(date(2026, 1, 1), 24, ZoneInfo("UTC"))


def test_off_is_never_due_and_daily_ignores_weekday():
    assert current_period(utc(2026, 1, 1), "off", 8, "UTC") is None
    assert current_period(utc(2026, 1, 1, 12), "daily", 8, "UTC", weekday=3).key == "daily:2026-01-01"


def test_aware_non_utc_now_is_accepted():
    berlin_now = datetime(2026, 3, 29, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 06:00Z
    assert current_period(berlin_now, "daily", 8, "Europe/Berlin").end == utc(2026, 3, 29, 6)


# --- zones -----------------------------------------------------------------------------------


@pytest.fixture
def fresh_zone_caches():
    schedule._country_zones.cache_clear()
    schedule._timezone_for_code.cache_clear()
    yield
    schedule._country_zones.cache_clear()
    schedule._timezone_for_code.cache_clear()


@pytest.mark.parametrize(
    ("code", "zone"),
    [
        ("DE", "Europe/Berlin"),  # tzdb also lists Europe/Busingen, identical from now on
        ("de", "Europe/Berlin"),
        ("IN", "Asia/Kolkata"),
        (" in ", "Asia/Kolkata"),
        ("NP", "Asia/Kathmandu"),
        ("FR", "Europe/Paris"),
        ("JP", "Asia/Tokyo"),
        ("US", "UTC"),
        ("RU", "UTC"),
        ("AU", "UTC"),
        ("ES", "UTC"),  # Canary Islands are an hour behind
        ("NZ", "UTC"),  # Chatham
        ("", "UTC"),
        (None, "UTC"),
        ("ZZ", "UTC"),
        ("DEU", "UTC"),
    ],
)
def test_timezone_for_country(code, zone):
    assert timezone_for_country(code) == zone


def test_timezone_for_country_without_tz_tables(monkeypatch, fresh_zone_caches):
    monkeypatch.setattr(schedule, "_read_tab", lambda name: None)
    assert timezone_for_country("DE") == "UTC"
    assert timezone_for_country("IN") == "UTC"


def test_zone_tables_are_read_from_the_tzdata_package_when_tzpath_has_none(monkeypatch):
    pytest.importorskip("tzdata")
    monkeypatch.setattr(zoneinfo, "TZPATH", ())
    text = schedule._read_tab("zone.tab")
    assert text is not None
    assert "Europe/Berlin" in text
    monkeypatch.setitem(__import__("sys").modules, "tzdata", None)
    assert schedule._read_tab("zone.tab") is None


def test_parse_zone1970_tab_rows_with_several_countries():
    text = (
        "# comment\n"
        "CH,DE,LI\t+4723+00832\tEurope/Zurich\tBüsingen\n"
        "DE,DK,NO,SE,SJ\t+5230+01322\tEurope/Berlin\tmost of Germany\n"
        "IN\t+2232+08822\tAsia/Kolkata\n"
        "broken line\n"
    )
    assert schedule._parse_tab(text) == {
        "CH": ("Europe/Zurich",),
        "DE": ("Europe/Berlin", "Europe/Zurich"),
        "LI": ("Europe/Zurich",),
        "DK": ("Europe/Berlin",),
        "NO": ("Europe/Berlin",),
        "SE": ("Europe/Berlin",),
        "SJ": ("Europe/Berlin",),
        "IN": ("Asia/Kolkata",),
    }


def test_single_zone_compares_offsets_from_now_on():
    summer = utc(2026, 6, 1)
    assert schedule._single_zone(("Europe/Berlin", "Europe/Paris"), summer) == "Europe/Berlin"
    assert schedule._single_zone(("Europe/Berlin", "Europe/London"), summer) is None
    # Same offsets most of the year, but not on the change days: EU vs US rules.
    assert schedule._single_zone(("Europe/London", "Atlantic/Reykjavik"), summer) is None
    assert schedule._single_zone(("Nope/Zone",), summer) is None


def test_valid_timezones():
    zones = valid_timezones()
    assert zones == sorted(zones)
    assert len(zones) == len(set(zones))
    for name in ("UTC", "Europe/Berlin", "Asia/Kolkata", "Pacific/Chatham",
                 "America/Argentina/Buenos_Aires"):
        assert name in zones
    for name in ("US/Eastern", "Etc/GMT+5", "CET", "EST5EDT", "localtime", "Factory", "GMT"):
        assert name not in zones
    zones.clear()
    assert "UTC" in valid_timezones()


# --- properties ------------------------------------------------------------------------------

ALL_ZONES = sorted(zoneinfo.available_timezones())
STEP = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
LOOKBACK = [timedelta(seconds=1), timedelta(minutes=15), timedelta(minutes=30), H, 2 * H, 3 * H,
            6 * H, 12 * H, 24 * H]


def wall_time_exists(target, tz):
    return any(
        wall(target.replace(tzinfo=tz, fold=fold).astimezone(UTC), tz) == target for fold in (0, 1)
    )


def check_delivery(instant, local_day, hour, tz):
    """instant is the first at which the wall clock in tz reads local_day hour:00 or later."""
    target = datetime.combine(local_day, time(hour))
    assert instant.utcoffset() == timedelta(0)
    assert wall(instant, tz) >= target
    for back in LOOKBACK:
        assert wall(instant - back, tz) < target
    if wall_time_exists(target, tz):
        assert wall(instant, tz) == target
    else:
        # The first instant after a gap: the offset changes exactly there.
        assert (instant - timedelta(seconds=1)).astimezone(tz).utcoffset() != (
            instant.astimezone(tz).utcoffset())
    return target


@st.composite
def instants_near_changes(draw):
    """(zone, now): now within a couple of days of one of the zone's offset changes in
    2020-2035 when it has any, else anywhere in that year."""
    zone = draw(st.sampled_from(ALL_ZONES))
    tz = ZoneInfo(zone)
    year = draw(st.integers(2020, 2035))
    first = utc(year, 1, 1)
    days = [first + timedelta(days=n) for n in range(366)]
    offsets = [day.astimezone(tz).utcoffset() for day in days]
    changes = [days[n] for n in range(1, len(days)) if offsets[n] != offsets[n - 1]]
    if changes:
        base = draw(st.sampled_from(changes))
        now = base + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 2 * 24 * 60)))
    else:
        now = first + timedelta(minutes=draw(st.integers(0, 365 * 24 * 60)))
    return zone, now + timedelta(microseconds=draw(st.integers(0, 59_999_999)))


@st.composite
def anywhere(draw):
    zone = draw(st.sampled_from(ALL_ZONES))
    now = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)))
    return zone, now.replace(tzinfo=UTC)


def check_period(zone, now, frequency, hour, weekday):
    tz = ZoneInfo(zone)
    step = STEP[frequency]
    period = current_period(now, frequency, hour, zone, weekday)

    assert period == current_period(now, frequency, hour, zone, weekday)  # deterministic
    assert period.key == f"{frequency}:{period.local_date.isoformat()}"
    assert period.start < period.end <= now
    assert period.start.utcoffset() == timedelta(0)
    if frequency == "weekly":
        assert period.local_date.weekday() == weekday
    check_delivery(period.end, period.local_date, hour, tz)
    assert period.end == delivery_instant(period.local_date, hour, tz)
    # The next delivery is after now (a local day that did not exist shares this instant).
    following = delivery_instant(period.local_date + step, hour, tz)
    check_delivery(following, period.local_date + step, hour, tz)
    assert following > now or following == period.end

    # Tiling. current_period(t) is the period that most recently closed at or before t, so
    # for t in [period.start, period.end) it is the period before, which ends exactly where
    # this one starts; and the one before that ends where that one starts.
    before = current_period(period.end - US, frequency, hour, zone, weekday)
    assert before.end == period.start
    assert before.key != period.key
    assert before.local_date < period.local_date
    assert current_period(period.start, frequency, hour, zone, weekday) == before
    middle = period.start + (period.end - period.start) / 2
    assert current_period(middle, frequency, hour, zone, weekday) == before
    assert current_period(period.end, frequency, hour, zone, weekday) == period
    assert current_period(period.start - US, frequency, hour, zone, weekday).end == before.start

    # Window length: one step of local calendar, shifted by the change in UTC offset.
    previous_target = datetime.combine(before.local_date, time(hour))
    target = datetime.combine(period.local_date, time(hour))
    if (before.local_date == period.local_date - step and wall_time_exists(previous_target, tz)
            and wall_time_exists(target, tz)):
        shift = period.end.astimezone(tz).utcoffset() - period.start.astimezone(tz).utcoffset()
        assert period.end - period.start == step - shift

    # What comes next: this period until it is covered, then the one after it, which starts
    # where this one ends and ends after now.
    assert next_period(now, frequency, hour, zone, weekday) == period
    assert next_period(now, frequency, hour, zone, weekday, covered_until=before.end) == period
    after = next_period(now, frequency, hour, zone, weekday, covered_until=period.end)
    assert after.start == period.end and after.end > now and after.local_date > period.local_date
    assert after == current_period(after.end, frequency, hour, zone, weekday)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone_now=st.one_of(instants_near_changes(), anywhere()),
    frequency=st.sampled_from(["daily", "weekly"]),
    hour=st.integers(0, 23),
    weekday=st.integers(0, 6),
)
def test_periods_tile_and_deliver_at_the_local_hour(zone_now, frequency, hour, weekday):
    zone, now = zone_now
    check_period(zone, now, frequency, hour, weekday)


@pytest.mark.parametrize("frequency", ["daily", "weekly"])
@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Europe/Berlin", date(2026, 3, 29)),
        ("Europe/Berlin", date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8)),
        ("America/New_York", date(2026, 11, 1)),
        ("Pacific/Chatham", date(2026, 4, 5)),
        ("Pacific/Chatham", date(2026, 9, 27)),
        ("America/Havana", date(2026, 3, 8)),
        ("America/Santiago", date(2026, 4, 5)),
        ("Asia/Beirut", date(2026, 10, 25)),
        ("Antarctica/Casey", date(2020, 10, 4)),
        ("Antarctica/Casey", date(2021, 3, 14)),
        ("Antarctica/Troll", date(2026, 3, 29)),
        ("Australia/Lord_Howe", date(2026, 10, 4)),
        ("Antarctica/Vostok", date(2023, 12, 18)),
        ("Pacific/Apia", date(2011, 12, 31)),
    ],
)
def test_periods_tile_on_every_hour_of_known_change_days(zone, day, frequency):
    """Every delivery hour, with now stepping over the change day (53 minutes: varied phases)."""
    start = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
    for hour in range(24):
        now = start + timedelta(minutes=hour)
        while now < start + timedelta(days=3):
            check_period(zone, now, frequency, hour, day.weekday())
            now += timedelta(minutes=53)
