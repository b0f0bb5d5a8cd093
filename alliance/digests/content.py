"""What a digest or alert mail carries: the notes it lists (Item, read as plain columns by
NoteView), the ones it only counts (Counted), and the digest as a whole (Digest: what is
listed in full and what is counted, its strictest TLP, its feed links). Built by
building.py, rendered by rendering.py; what each TLP lets a mail show is
alliance.sharing.channels'."""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from flask import current_app
from markupsafe import Markup

from alliance.auth.models import User
from alliance.core.urls import external_url
from alliance.sharing.channels import mail_detail
from alliance.stix.tlp import TLP_RANK

DIGEST_ITEMS = 200          # listed in full at most (fewer past MAIL_BYTES); the rest counted
SUMMARY_CHARS = 280
KIND_LABELS = {"incident": "Incident report", "indicators": "Indicator set",
               "analysis": "Policy analysis", "bundle": "STIX bundle"}


@dataclass
class NoteView:
    """What a digest shows of a note: read as plain columns (no ORM objects to build for the
    hundreds of notes of a busy period)."""
    id: int
    report_id: str
    title: str
    description: str
    tlp: str
    kind: str
    created_at: datetime
    organisation: SimpleNamespace
    alliance_ids: list

    @property
    def uuid(self) -> str:
        return self.report_id.split("--", 1)[1]


WATCH_REASONS = ("matches your watch term", "matches one of your watch terms")


def term_reason(tlp: str, term: str) -> str:
    """Why a note carrying a watch term is in a mail: the term, where its TLP allows
    (sharing.channels: the term is a piece of the note's content)."""
    return (f"matches your watch term {term}" if mail_detail(tlp).watch_term
            else "matches one of your watch terms")


@dataclass
class Item:
    """One listed note of a digest or alert. The values both parts print are computed once
    here and shared by the text and the HTML part (plain strings: each template escapes
    them, as it escapes everything)."""
    note: NoteView
    reasons: list[str]
    link: str

    @property
    def tlp(self) -> str:
        return self.note.tlp

    @cached_property
    def title(self) -> str:
        return self.note.title

    @cached_property
    def organisation_name(self) -> str:
        return self.note.organisation.name

    @cached_property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.note.kind, self.note.kind)

    @cached_property
    def when(self) -> str:
        return current_app.jinja_env.filters["when"](self.note.created_at)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)  # not cached: a preview rewrites the reasons

    @cached_property
    def details(self) -> str | None:
        """Kind, author organisation and time, where the TLP allows (sharing.channels: not
        for AMBER, as who posted an incident report often names its victim)."""
        if not mail_detail(self.note.tlp).particulars:
            return None
        return f"{self.kind_label} · {self.organisation_name} · {self.when}"

    @cached_property
    def summary(self) -> str | None:
        """A summary of the description, where the TLP allows (sharing.channels)."""
        if not mail_detail(self.note.tlp).summary:
            return None
        text = " ".join((self.note.description or "").split())
        return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1].rstrip() + "…"

    @property
    def text_block(self) -> Markup:
        """The item in the text part: the note's lines, why, link (_fragments)."""
        return self._blocks()[0]

    @property
    def html_block(self) -> Markup:
        """The item's block in the HTML part (_fragments)."""
        return self._blocks()[1]

    def _blocks(self) -> tuple[Markup, Markup]:
        # Looked up once for both parts, again only if the reasons changed since (a preview
        # rewrites them).
        why = self.why
        kept = self.__dict__.get("_kept")
        if kept is None or kept[0] != why:
            kept = self.__dict__["_kept"] = (why, _fragments(self))
        return kept[1]


FRAGMENTS_PER_WORKER = 10_000  # about 2.5 KB each with its key: some 25 MB at most


def _fragments(item: Item) -> tuple[Markup, Markup]:
    """The item's text and HTML, rendered (autoescaped) by emails/_digest_item.html — once
    per note and reason per worker process, then reused for each reader whose digest lists
    the note for that reason: a busy period lists the same few thousand notes, mostly "new
    in <alliance>", in thousands of digests. Safe to share because the fragment is a function
    of the note's own values and the reason only, and the key holds every one of them (an
    edited title, a changed TLP or organisation name, another BASE_URL make another key).
    Whether the reader may see the note at all is decided before, by
    building.build_digest, through the read rule."""
    note, why = item.note, item.why
    key = (note.id, note.report_id, note.title, note.description, note.tlp, note.kind,
           note.created_at, item.organisation_name, item.link, why)
    cache = current_app.extensions.setdefault("digest_fragments", {})
    found = cache.get(key)
    if found is None:
        # Any: a template module's macros are attributes Jinja sets at run time.
        module: Any = current_app.jinja_env.get_template("emails/_digest_item.html").module
        # Macros of an autoescaped environment return Markup; a plain str (autoescape off)
        # would be escaped again where it is printed: wrong, never unsafe.
        found = (module.text(item, why), module.html(item, why))
        if len(cache) >= FRAGMENTS_PER_WORKER:
            cache.clear()
        cache[key] = found
    return found


@dataclass
class Counted:
    """Notes of a digest's period that its mail counts instead of listing: how many, in which
    alliance (None: the other notes the reader gets, by a watch term or a comment), why, and
    the link to the feed filtered to that alliance and the period."""
    name: str | None
    count: int
    why: str
    link: str

    @property
    def text_link(self) -> Markup:
        """The link as the text part prints it: as is, or its "&" would read "&amp;" and the
        link would not work. Safe: external_url built it from BASE_URL, an alliance id and
        two ISO dates, URL-encoded; nothing in it is typed by anyone."""
        return Markup(self.link)  # noqa: S704


@dataclass
class Digest:
    user: User
    start: datetime
    end: datetime
    groups: list[tuple[str | None, list[Item]]] = field(default_factory=list)
    red_count: int = 0
    more: int = 0  # notes counted (Counted rows), not listed
    counted: list[Counted] = field(default_factory=list)
    # Filled by build_digest: every listable item loaded, the most relevant first (with its
    # group), the notes past the queries' limits per group (never loaded: counted only),
    # their reasons, and the alliance ids by name (for the feed links).
    ranked: list[tuple[str | None, Item]] = field(default_factory=list)
    unlisted: dict = field(default_factory=dict)
    unlisted_why: dict = field(default_factory=dict)
    alliance_ids: dict = field(default_factory=dict)
    shown: int = 0
    links: dict | None = None  # the links it was rendered with (render_digest)

    @property
    def count(self) -> int:
        return sum(len(items) for _, items in self.groups) + self.red_count + self.more

    @property
    def empty(self) -> bool:
        return self.count == 0

    @property
    def strictest(self) -> str:
        """The strictest TLP of what the mail shows: its listed notes. TLP:RED notes are
        only counted and the "N more" only numbered, never shown, so they add nothing: a
        mail that carries nothing but counts is TLP:CLEAR."""
        levels = [item.tlp for _, items in self.groups for item in items]
        return max(levels, key=TLP_RANK.__getitem__, default="CLEAR")

    @property
    def alliance_count(self) -> int:
        return len({name for name, _ in self.groups if name}
                   | {row.name for row in self.counted if row.name})

    def feed_link(self, name: str | None) -> str:
        """The feed filtered to the period (the UTC days it touches: the feed filters by
        day) and, for an alliance's row, to that alliance."""
        since = self.start.astimezone(UTC).date()
        until = max(since, (self.end - timedelta(microseconds=1)).astimezone(UTC).date())
        values = {"since": since.isoformat(), "until": until.isoformat()}
        if name is not None and name in self.alliance_ids:
            values = {"alliance": self.alliance_ids[name], **values}
        return external_url("notes.feed", **values)

    def show(self, listed: int, rows: int | None = None) -> None:
        """List the `listed` most relevant items in full (grouped by alliance, newest first
        in each group, as always) and count the rest per alliance, with a feed link each;
        past `rows` rows, the smallest go into one row linking to the feed of the period."""
        listed = max(0, min(listed, len(self.ranked), DIGEST_ITEMS))
        self.shown = listed
        groups: dict[str | None, list[Item]] = defaultdict(list)
        for name, item in sorted(self.ranked[:listed],
                                 key=lambda g: (g[1].note.created_at, g[1].note.id),
                                 reverse=True):
            groups[name].append(item)
        self.groups = sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        counts: dict[str | None, int] = defaultdict(int, self.unlisted)
        whys: dict[str | None, list[str]] = {k: list(v) for k, v in self.unlisted_why.items()}
        for name, item in self.ranked[listed:]:
            counts[name] += 1
            for reason in item.reasons:
                # Counted notes are not named: nor is the watch term one carries.
                reason = WATCH_REASONS[1] if reason.startswith(WATCH_REASONS) else reason
                if reason not in whys.setdefault(name, []):
                    whys[name].append(reason)
        self.counted = [Counted(name, counts[name], "; ".join(whys.get(name, [])) or
                                (f"new in {name}" if name else "notes you can read"),
                                self.feed_link(name))
                        for name in sorted(counts, key=lambda n: (n is None, n or ""))
                        if counts[name]]
        if rows is not None and len(self.counted) > rows:
            kept = sorted(self.counted, key=lambda r: -r.count)[:max(rows - 1, 0)]
            rest = [r for r in self.counted if r not in kept]
            self.counted = [r for r in self.counted if r in kept] + [Counted(
                f"{len(rest)} other alliances", sum(r.count for r in rest),
                "new in your alliances", self.feed_link(None))]
        self.more = sum(row.count for row in self.counted)


def note_link(note, base: str | None = None) -> str:
    base = base if base is not None else current_app.config["BASE_URL"].rstrip("/")
    return f"{base}/notes/{note.uuid}"
