"""When e-mail digests are due: pure functions over the tz database (stdlib zoneinfo only).

A user's schedule is a frequency ("off", "daily" or "weekly" on a chosen weekday, 0=Monday),
a local delivery hour (0-23) and an IANA zone. Each delivery closes a Period: the window of
content from the previous delivery instant (inclusive) to this one (exclusive), named by the
local calendar date of delivery ("daily:2026-03-29", "weekly:2026-03-30").

Which period comes next is next_period's answer, for the scheduler and the page that tells
the user alike. It tells periods apart by where their content window ends, never by the
calendar day or the hour a digest ran: after the delivery hour moves, a second window can
close on a day that already had a digest under the old hour, and it is a digest of its own.

Every instant is computed from the local calendar, never by adding 24 hours in UTC: a day with
a DST change gives a 23- or 25-hour window, and consecutive periods tile time exactly (period
N's end is period N+1's start), so stepping through time yields each period once, with no gap
and no double send.

Wall times that do not exist or exist twice (see delivery_instant) follow one rule: delivery
happens at the first instant at which the local clock reads hour:00 or later on that day.
"""
import functools
import importlib.resources
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from alliance.core.states import Frequency

OFF, DAILY, WEEKLY = Frequency.OFF, Frequency.DAILY, Frequency.WEEKLY
FREQUENCIES = tuple(Frequency)

_STEP: dict[str, timedelta] = {DAILY: timedelta(days=1), WEEKLY: timedelta(days=7)}
# More than enough: the period ending on the local day before "now" (or on the chosen weekday
# before it) has always passed; only a skipped calendar day (Samoa, 2011-12-30) needs a 3rd.
_MAX_STEPS_BACK = 8


@dataclass(frozen=True)
class Period:
    """One digest: content from start (inclusive) to end (exclusive), sent at end.

    key: the period's name, "<frequency>:<ISO local delivery date>" (for people and tests;
      the delivery ledger keys a digest by its window's end, digests.scheduling.ledger_key).
    start: aware UTC, the previous delivery instant of the same schedule.
    end: aware UTC, this delivery instant.
    local_date: the local calendar date of delivery (for the subject, e.g. "Mon 2 Mar")."""

    key: str
    start: datetime
    end: datetime
    local_date: date


def delivery_instant(local_day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The aware UTC instant at which the wall clock in tz reads hour:00 on local_day.

    - Ambiguous wall time (clocks go back and hour:00 happens twice): the FIRST occurrence
      (fold=0), e.g. 01:00 in New York on 2026-11-01 is 01:00 EDT = 05:00Z.
    - Nonexistent wall time (clocks jump over it): the first instant after the gap, i.e. the
      moment of the jump, e.g. 02:00 in New York on 2026-03-08 is 03:00 EDT = 07:00Z, and
      hour 0 in Havana on 2026-03-08 (00:00 -> 01:00) is 01:00 CDT. For the usual one-hour
      jump this is the wall time shifted forward by the gap; it differs for an hour inside a
      longer or off-the-hour gap: Pacific/Chatham 03:00 on 2026-09-27 (02:45 -> 03:45) is
      03:45, not 04:00; Antarctica/Troll 02:00 on 2026-03-29 (01:00 -> 03:00) is 03:00.

    Both cases are "the first instant at which the local clock reads hour:00 or later on
    local_day", which makes delivery instants non-decreasing day by day.
    """
    _check_hour(hour)
    wall = datetime.combine(local_day, time(hour))
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    # In a gap [T + before, T + after) around the transition instant T: fold=0 applies the
    # offset from before the jump and lands after T; fold=1 applies the later offset and lands
    # before T. T is the first instant whose wall time is at or past `wall`: bisect on whole
    # seconds (tz transitions are whole seconds).
    lo = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    hi = int(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), tz) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def current_period(
    now: datetime, frequency: str, hour: int, tz_name: str, weekday: int | None = None
) -> Period | None:
    """The period whose delivery instant is the most recent one at or before now.

    daily: today's local delivery if it has passed, else yesterday's. weekly: the most recent
    local `weekday` (0=Monday; ignored for daily) at the hour. The period starts at the
    delivery instant one schedule step earlier in the local calendar. "off" gives None.
    Raises ValueError for an unknown frequency, an hour outside 0-23, an unknown zone, a weekly
    schedule without a valid weekday, or a naive `now`."""
    if frequency not in FREQUENCIES:
        raise ValueError(f"unknown digest frequency {frequency!r}; expected one of {FREQUENCIES}")
    _check_hour(hour)
    tz = _zone(tz_name)
    day_of_week = _check_weekday(weekday) if frequency == WEEKLY else 0
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    if frequency == OFF:
        return None

    step = _STEP[frequency]
    today = now.astimezone(tz).date()
    if frequency == WEEKLY:
        today -= timedelta(days=(today.weekday() - day_of_week) % 7)
    # Start one step ahead: delivery instants never decrease, so the first one <= now, walking
    # back, is the most recent (this also copes with clocks going back across midnight).
    day = today + step
    for _ in range(_MAX_STEPS_BACK):
        end = delivery_instant(day, hour, tz)
        if end <= now:
            break
        day -= step
    else:  # pragma: no cover - unreachable for real tz data
        raise RuntimeError(f"no {frequency} delivery found before {now} in {tz_name}")

    # The previous delivery, skipping a local day that did not exist and so shares this
    # delivery instant, to keep start < end.
    previous = day - step
    for _ in range(_MAX_STEPS_BACK):
        start = delivery_instant(previous, hour, tz)
        if start < end:
            break
        previous -= step
    else:  # pragma: no cover - unreachable for real tz data
        raise RuntimeError(f"no {frequency} delivery found before {end} in {tz_name}")

    return Period(key=f"{frequency}:{day.isoformat()}", start=start, end=end, local_date=day)


def next_period(
    now: datetime,
    frequency: str,
    hour: int,
    tz_name: str,
    weekday: int | None = None,
    covered_until: datetime | None = None,
) -> Period | None:
    """The period this schedule builds next, seen at `now`: the one rule both the scheduler
    (which builds it once its end has passed) and the page that promises it go by.

    covered_until: where the last digest window built for the user ended (the delivery
    ledger's latest window_end, whatever the digest's outcome: sent, empty, skipped), or
    None. A period is covered when its end is at or before covered_until.

    - The current period (the latest to end at or before now) while it is not covered: it
      is due now. After the hour moved later the same day it ends on a day that already had
      a digest under the old hour, and is its own window (the day's content is not skipped).
    - Otherwise the first period ending after covered_until, which ends after now too. After
      the hour moved earlier it is not the current period (already covered, so nothing is
      built twice); covered_until may even lie ahead of now (a run for an instant ahead).

    Missed periods are not built one by one: the current one is, and the caller decides
    where its content window starts. "off" gives None. Raises ValueError as current_period
    does, and for a naive covered_until."""
    period = current_period(now, frequency, hour, tz_name, weekday)
    if period is None or covered_until is None:
        return period
    if covered_until.utcoffset() is None:
        raise ValueError(f"covered_until must be an aware datetime, got {covered_until!r}")
    if period.end > covered_until:
        return period
    # The period that ends at or before covered_until is covered; the one after it is not.
    last_covered = current_period(covered_until, frequency, hour, tz_name, weekday)
    assert last_covered is not None  # None is for "off", which has no period above either
    return _following(last_covered, frequency, hour, _zone(tz_name))


def _following(period: Period, frequency: str, hour: int, tz: ZoneInfo) -> Period:
    """The period after `period`: it starts where `period` ends. A local day that did not
    exist shares its delivery instant with the day after; as in current_period, the period
    is named by the later day."""
    step = _STEP[frequency]
    day = period.local_date + step
    for _ in range(_MAX_STEPS_BACK):
        end = delivery_instant(day, hour, tz)
        if end > period.end:
            while delivery_instant(day + step, hour, tz) == end:
                day += step
            return Period(key=f"{frequency}:{day.isoformat()}", start=period.end, end=end,
                          local_date=day)
        day += step
    raise RuntimeError(f"no {frequency} delivery found after {period.end}")  # pragma: no cover


def timezone_for_country(country_code: str) -> str:
    """A default zone for an ISO 3166 country code: its zone when it has, in practice, one.

    "In practice": every zone the tz database lists for the country (zone.tab, or zone1970.tab)
    keeps the same UTC offsets over the coming year (400 days); the country's first listed zone is
    returned. So "DE" gives "Europe/Berlin" although tzdb also lists Europe/Busingen for it, and
    "IN" gives "Asia/Kolkata". Countries with zones that differ ("US", "RU", "AU"), unknown or
    empty codes, and hosts without the tables give "UTC"."""
    return _timezone_for_code((country_code or "").strip().upper())


@functools.lru_cache(maxsize=512)
def _timezone_for_code(code: str) -> str:
    zones = _country_zones().get(code)
    if not zones:
        return "UTC"
    return _single_zone(zones) or "UTC"


_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)


@functools.cache
def _valid_timezones() -> tuple[str, ...]:
    names = {
        name
        for name in zoneinfo.available_timezones()
        if name.split("/", 1)[0] in _AREAS and "/" in name
    }
    return tuple(sorted(names | {"UTC"}))


def valid_timezones() -> list[str]:
    """Sorted zone names to offer users: canonical-style "Area/Location" names (Europe/Berlin,
    America/Argentina/Salta) plus "UTC"; no legacy aliases (US/Eastern, CET, Etc/GMT+5)."""
    return list(_valid_timezones())


def _check_hour(hour: int) -> None:
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ValueError(f"delivery hour must be an integer from 0 to 23, got {hour!r}")


def _check_weekday(weekday: int | None) -> int:
    if weekday is None:
        raise ValueError("a weekly digest needs a weekday (0=Monday .. 6=Sunday)")
    if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise ValueError(f"weekday must be an integer from 0 (Monday) to 6 (Sunday), got {weekday!r}")
    return weekday


def _zone(tz_name: str) -> ZoneInfo:
    if not isinstance(tz_name, str) or not tz_name:
        raise ValueError(f"unknown time zone {tz_name!r}")
    try:
        return ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {tz_name!r}") from exc


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """The naive local wall time in tz at an aware instant."""
    return instant.astimezone(tz).replace(tzinfo=None)


# --- country -> zone ----------------------------------------------------------------------

_AGREE_FOR = timedelta(days=400)  # a whole DST cycle, and changes announced for next year


def _read_tab(name: str) -> str | None:
    """A tzdb table from where zoneinfo finds its data: TZPATH first, then the tzdata package."""
    for directory in zoneinfo.TZPATH:
        path = Path(directory) / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    try:
        resource = importlib.resources.files("tzdata").joinpath("zoneinfo", name)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, OSError):
        pass
    return None


def _parse_tab(text: str) -> dict[str, tuple[str, ...]]:
    """country code -> zones, from zone.tab (one code a row) or zone1970.tab (codes joined by
    commas). A row that lists the country first comes before one that lists it further on, so
    zone1970.tab's "DE,DK,...  Europe/Berlin" precedes "CH,DE,LI  Europe/Zurich"."""
    ranked: dict[str, list[tuple[bool, str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        for position, code in enumerate(fields[0].split(",")):
            ranked.setdefault(code.strip().upper(), []).append((position > 0, fields[2].strip()))
    return {
        code: tuple(dict.fromkeys(zone for _, zone in sorted(rows, key=lambda row: row[0])))
        for code, rows in ranked.items()
    }


@functools.cache
def _country_zones() -> dict[str, tuple[str, ...]]:
    for name in ("zone.tab", "zone1970.tab"):
        text = _read_tab(name)
        if text:
            return _parse_tab(text)
    return {}


def _single_zone(zones: tuple[str, ...], now: datetime | None = None) -> str | None:
    """zones[0] if every zone keeps the same UTC offset as it from now on, else None.

    Compares offsets every hour for _AGREE_FOR, and every quarter hour within an hour in which
    an offset changed (nearly all transitions fall on whole quarter hours in UTC)."""
    try:
        loaded = [ZoneInfo(zone) for zone in zones]
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None
    if len(loaded) == 1:
        return zones[0]

    def offsets(instant: datetime) -> set[timedelta | None]:
        return {instant.astimezone(zone).utcoffset() for zone in loaded}

    instant = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    until = instant + _AGREE_FOR
    seen = offsets(instant)
    while len(seen) == 1 and instant < until:
        quarters = [instant + timedelta(minutes=minutes) for minutes in (15, 30, 45)]
        instant += timedelta(hours=1)
        current = offsets(instant)
        if current != seen and any(len(offsets(quarter)) > 1 for quarter in quarters):
            return None
        seen = current
    return zones[0] if len(seen) == 1 else None
