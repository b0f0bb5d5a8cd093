"""What a dashboard chart is: categories, series of counts and the words around them. The
same object fills a page's table (the numbers for screen readers and for people who prefer
tables), the chart static/js/charts.js draws, and the chart's JSON data endpoint."""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

# The windows a dashboard offers (?days=), the first is the default.
WINDOWS = (30, 90)


@dataclass(frozen=True)
class Window:
    """The last `days` UTC days up to and including today's."""

    days: int
    now: datetime

    @property
    def first_day(self) -> date:
        return self.now.astimezone(UTC).date() - timedelta(days=self.days - 1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time.min, UTC)

    def day_labels(self) -> list[str]:
        return [(self.first_day + timedelta(days=i)).isoformat() for i in range(self.days)]


def window(days, now: datetime) -> Window:
    """The window a request asks for; anything but one of WINDOWS is the default."""
    try:
        days = int(days)
    except (TypeError, ValueError):
        days = WINDOWS[0]
    return Window(days if days in WINDOWS else WINDOWS[0], now)


def day_of(value) -> str:
    """A SQL date as YYYY-MM-DD (PostgreSQL returns a date, SQLite text)."""
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


@dataclass
class Series:
    label: str
    values: list[int]
    key: str = ""  # picks the colour in charts.js (a TLP level, "good", "bad", ...)


@dataclass
class Chart:
    """One chart. kind: "line" (over time), "bar", "hbar" (long category names) or
    "stacked" (stacked bars). links: an address per category for the table, or None."""

    name: str
    title: str
    kind: str
    row_header: str
    labels: list[str] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    help: str = ""
    links: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(v for s in self.series for v in s.values)

    def rows(self):
        """(label, link or None, [value per series]) per category, for the table."""
        for i, label in enumerate(self.labels):
            link = self.links[i] if i < len(self.links) else None
            yield label, link, [s.values[i] for s in self.series]

    def totals(self) -> list[int]:
        return [sum(s.values) for s in self.series]

    def as_json(self) -> dict:
        return {"name": self.name, "title": self.title, "kind": self.kind,
                "labels": list(self.labels),
                "series": [{"label": s.label, "key": s.key, "values": list(s.values)}
                           for s in self.series]}


def grid(labels: list[str], names: list[str], counts: dict[tuple[str, str], int],
         keys=None) -> list[Series]:
    """Series per name over the labels, from (label, name) -> count (missing: 0)."""
    keys = keys or {}
    return [Series(name, [counts.get((label, name), 0) for label in labels], keys.get(name, ""))
            for name in names]
