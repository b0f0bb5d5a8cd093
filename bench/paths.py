"""The read-path benchmark (issue 22): p50 and p95 of every read path at two data sizes,
side by side, and the growth from the smaller to the larger. A path whose p50 or p95 grows
more than GOAL_RATIO (1.5x) fails the run: its cost follows the data, not the page.

Two databases are filled by bench/benchdata.py's generate() (BENCH_PATH_SIZES notes, default
"10000,100000"; "10000,1000000" for the issue's million; ~BENCH_PATH_OBJECTS_PER_NOTE (10)
STIX objects each, 100 organisations, 30 alliances), both also holding what the paths need:
5 notes of 1,000 objects the reader can read, a value (benchdata.SHARED_VALUE) in
min(BENCH_PATH_SHARED (10,000), notes / 10) notes, and 40 invented words in 5 notes each.
On PostgreSQL by default (a throwaway cluster on loopback, tests/servers.py PostgresServer;
VACUUM ANALYZE after the fill), BENCH_PATH_DB=sqlite for SQLite files.

Then, for the generated reader (an organisation active in 5 alliances), in-process through
the real views, each path is timed over BENCH_PATH_ROUNDS (100) requests at each size, the
two sizes in turn request by request (a neighbour's burst on a shared machine slows both);
every request of a path asks something else — another object, page position, filter value
or note — drawn at random from the data of that size, common and rare values alike:

  taxii objects / manifest     a page of 100 at a random position of one of the reader's
                               5 alliance collections (a fifth of them first pages)
  taxii object / versions      GET objects/{id}/ and .../versions/ of random readable objects
  taxii match[...]             type (common: indicator, relationship, report, at random
                               positions; rare: malware, vulnerability, campaign), id (1-3
                               random ids), version (first, last, all), spec_version (2.1),
                               added_after (random instants), and all of them combined
  feed                         the first page and pages at random positions (`before`)
  feed <filter>                type (common types), tlp (every level), alliance (the
                               reader's 5), sector, country, tag (their 5 most common
                               values), dates (random ranges of 7 to 90 days); combined:
                               type+tlp, alliance+dates, tag+type and all seven; rare values
                               (types, countries, sectors few or no notes hold)
  search words                 a common word (one of the 12 threats, or "wave", in every
                               title) and a rare one (in 5 notes at every size)
  search value                 an observable value: random stored values, and common ones
                               (the most shared values and SHARED_VALUE)
  note page 1,000 objects      the page of one of the 5 notes of 1,000 objects
  correlation                  the page of a random readable note holding SHARED_VALUE,
                               correlated with the others holding it (capped: 50 shown)
  dashboard analyst / coordinator / platform
                               each role's dashboard (a coordinator of the reader's first
                               alliance, a platform admin), 30 and 90 days in turn
  dashboard chart data         every chart's JSON endpoint, in turn
                               (counts over a window of days grow with what those days
                               hold: the growth of the four dashboard paths is shown but
                               does not fail the run; their goal is the p95 below)

Issue 23's goals beside the growth: the dashboards and the note page of 1,000 objects answer
in p95 < PAGE_P95_MS (200 ms) at the larger size; the exports of everything the reader may
read (CSV of observables, STIX bundle), streamed, hold a steady memory (peak traced within
1.5x while the bytes grow with the data).

Printed: p50/p95 at each size and the ratio large/small per path. Written:
bench/results/paths-<timestamp>.json and a chart of the ratios (grouped bars, p50 and p95,
with the 1.5x line), paths-<timestamp>.png, copied to bench/results/paths-latest.png. Exits
non-zero, naming them, when a path grows past 1.5x. bench/run.py runs it as a part
(BENCH_PATHS=0 skips it).

    .venv/bin/python bench/paths.py
    BENCH_PATH_SIZES=10000,1000000 .venv/bin/python bench/paths.py
    BENCH_PATH_SIZES=1000,5000 BENCH_PATH_ROUNDS=40 BENCH_PATH_DB=sqlite .venv/bin/python bench/paths.py
"""
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
_OWN_TMP = None
if not os.environ.get("INSTANCE_PATH"):  # bench/run.py sets it
    _OWN_TMP = os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="alliance-bench-paths-")
os.environ["ALLIANCE_ENV"] = "testing"
# Figures, not a log of every request (LOG_LEVEL=INFO shows the access log).
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("DATABASE_URL", None)

TAXII = "application/taxii+json;version=2.1"
GOAL_RATIO = 1.5
ORGS, ALLIANCES = 100, 30
LARGE_NOTES, LARGE_NOTE_OBJECTS, RARE_WORDS = 5, 1000, 40
COMMON_WORDS = ("phishing", "ransomware", "botnet", "espionage", "credential", "wave")
TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
COMMON_TYPES = ("indicator", "relationship", "report")
RARE_TYPES = ("malware", "vulnerability", "campaign")  # campaign: held by no note
# Issue 23: the dashboards and the note page of 1,000 objects answer in p95 < PAGE_P95_MS at
# the larger size, whatever their growth.
PAGE_P95_MS = 200.0
PAGE_PATHS = ("dashboard analyst", "dashboard coordinator", "dashboard platform",
              "dashboard chart data", "note page 1,000 objects")
# Counts over a window of days (the dashboards) grow with what those days hold: their goal
# is the p95 above, and their growth is shown but does not fail the run.
WINDOW_COUNTS = PAGE_PATHS[:4]
EXPORTS = (("csv", "/notes/export/observables.csv"), ("stix", "/notes/export/bundle.json"))
PAGE = 100
# Paths whose every request renders a big page: half the rounds (at least 20).
SLOW = ("note page 1,000 objects",)


def _settings() -> dict:
    return {"sizes": sorted(int(s) for s in os.environ.get(
                "BENCH_PATH_SIZES", "10000,100000").split(",")),
            "db": os.environ.get("BENCH_PATH_DB", "postgresql").strip(),
            "rounds": int(os.environ.get("BENCH_PATH_ROUNDS", "100")),
            "objects_per_note": float(os.environ.get("BENCH_PATH_OBJECTS_PER_NOTE", "10")),
            "shared": int(os.environ.get("BENCH_PATH_SHARED", "10000")),
            "seed": int(os.environ.get("BENCH_PATH_SEED", "1"))}


def _percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and nearest-rank p95, in ms."""
    ordered = sorted(times)
    return statistics.median(ordered), ordered[math.ceil(len(ordered) * 0.95) - 1]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- one database of one size -------------------------------------------------------------

class Size:
    """A filled database of one size, its app, the reader's clients, and the requests of
    each path drawn from its data."""

    def __init__(self, databases, notes: int, settings: dict):
        from bench.scale import _app

        self.notes = notes
        self.url = databases.new(f"paths{notes}")
        self.app = _app(self.url)
        self.made, self.fill_s = self._fill(settings)
        self.rng = random.Random(f"paths-{settings['seed']}-{notes}")
        self._clients()

    def _fill(self, settings: dict):
        from bench.benchdata import Plan, analyze, generate

        done = [0]

        def progress(n):
            done[0] += n
            if done[0] % 20000 < n or done[0] == self.notes:
                print(f"    {done[0]:,}/{self.notes:,} notes", file=sys.stderr, flush=True)

        plan = Plan(notes=self.notes, orgs=ORGS, alliances=ALLIANCES, seed=settings["seed"],
                    objects_per_note=settings["objects_per_note"], large_notes=LARGE_NOTES,
                    large_note_objects=LARGE_NOTE_OBJECTS,
                    shared_value_notes=min(settings["shared"], self.notes // 10),
                    rare_words=RARE_WORDS)
        with self.app.app_context():
            start = time.perf_counter()
            made = generate(plan, progress=progress)
            analyze()
            return made, time.perf_counter() - start

    def _clients(self) -> None:
        from sqlalchemy import select

        from alliance.alliances.models import Alliance, Coordinator
        from alliance.apikeys.services import create_key
        from alliance.auth.models import User
        from alliance.extensions import db
        from alliance.taxii.services import alliance_collection_id
        from tests import factories

        with self.app.app_context():
            self.reader = db.session.scalar(select(User).where(
                User.email == self.made["reader"]["email"]))
            self.alliances = [db.session.scalar(select(Alliance.id).where(Alliance.slug == s))
                              for s in self.made["reader"]["alliances"]]
            self.reader_id = self.reader.id
            key, plaintext = create_key(self.reader, "paths bench")
            self.key_id = key.id
            self.web = self.app.test_client()
            factories.login(self.web, self.reader)
            self.api = self.app.test_client()
            self.api.environ_base.update(HTTP_AUTHORIZATION=f"Bearer {plaintext}",
                                         HTTP_ACCEPT=TAXII)
            self.collections = {a: alliance_collection_id(a) for a in self.alliances}
            # A coordinator of the reader's first alliance, and a platform admin.
            coordinator = db.session.scalar(select(User).join(
                Coordinator, Coordinator.user_id == User.id).where(
                Coordinator.alliance_id == self.alliances[0]).order_by(User.id).limit(1))
            self.coordinated = db.session.scalar(select(Alliance.slug).where(
                Alliance.id == self.alliances[0]))
            self.coord = self.app.test_client()
            factories.login(self.coord, coordinator)
            self.admin = self.app.test_client()
            factories.login(self.admin, factories.make_admin(f"admin@paths-{self.notes}.example"))
            db.session.remove()

    def drop(self, databases) -> None:
        from alliance.extensions import db

        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop(self.url)

    # --- what the requests ask for, drawn from this size's data ---------------------------

    def requests(self, rounds: int) -> dict[str, list[tuple]]:
        """Per path, `rounds` requests: (client name, path, query string)."""
        from alliance.auth.models import User
        from alliance.extensions import db

        with self.app.app_context():
            try:
                self.reader = db.session.get(User, self.reader_id)
                return self._requests(rounds)
            finally:
                db.session.remove()

    def _positions(self, count: int, stix_type: str | None = None) -> list[tuple]:
        """Random rows of the reader's alliance collections: (alliance id, date added, row
        id, stix id)."""
        from sqlalchemy import func, select

        from alliance.extensions import db
        from alliance.notes.models import CollectionObject, StixObject

        stmt = (select(CollectionObject.alliance_id, CollectionObject.date_added,
                       CollectionObject.object_id, StixObject.stix_id)
                .join(StixObject, StixObject.id == CollectionObject.object_id)
                .where(CollectionObject.alliance_id.in_(self.alliances)))
        if stix_type:
            stmt = stmt.where(CollectionObject.type == stix_type)
        return [tuple(r) for r in db.session.execute(
            stmt.order_by(func.random()).limit(count))]

    def _cursor(self, alliance_id: int, filters, added, row_id) -> str:
        from alliance.taxii import reading, services

        collection = services.get_collection(self.reader, self.collections[alliance_id])
        return reading._cursor(self.key_id, collection, filters, added, row_id)

    def _readable_ids(self, positions: list[tuple], want: int) -> list[tuple[int, str]]:
        """(alliance id, stix id) of objects the reader gets by id (a RED note's objects
        are in the collection's rows but not served to everyone)."""
        found = []
        for alliance_id, _added, _row, stix_id in positions:
            response = self.api.get(f"{self._objects(alliance_id)}{stix_id}/")
            if response.status_code == 200:
                found.append((alliance_id, stix_id))
            if len(found) == want:
                break
        return found

    def _objects(self, alliance_id: int) -> str:
        return f"/taxii2/api/collections/{self.collections[alliance_id]}/objects/"

    def _requests(self, rounds: int) -> dict[str, list[tuple]]:  # noqa: C901, PLR0915 (a list)
        from sqlalchemy import func, select

        from alliance.extensions import db
        from alliance.notes.models import Note, NoteFacet, Observable
        from alliance.sharing.policy import Principal, readable_notes
        from alliance.taxii.filters import Filters, rfc3339

        rng, paths = self.rng, {}

        def cycle(values, n=rounds):
            values = list(values)
            return [values[i % len(values)] for i in range(n)]

        def taxii(alliance_id, kind="objects", **query):
            url = self._objects(alliance_id)
            return ("api", url.replace("/objects/", "/manifest/") if kind == "manifest"
                    else url, {"limit": str(PAGE), **query})

        # TAXII pages at random positions (signed cursors, as a walk would hand them out).
        spots = self._positions(rounds * 2)
        plain = Filters()
        pages = [taxii(a, next=self._cursor(a, plain, added, row)) if i % 5 else taxii(a)
                 for i, (a, added, row, _sid) in enumerate(spots[:rounds])]
        paths["taxii objects"] = pages
        paths["taxii manifest"] = [("api", url.replace("/objects/", "/manifest/"), q)
                                   for _c, url, q in pages]
        ids = self._readable_ids(spots, rounds + 10)
        paths["taxii object by id"] = [("api", f"{self._objects(a)}{sid}/", {})
                                       for a, sid in cycle(ids)]
        paths["taxii versions"] = [("api", f"{self._objects(a)}{sid}/versions/", {})
                                   for a, sid in cycle(ids)]
        typed = []
        for stix_type in COMMON_TYPES:
            filters = Filters(types=(stix_type,))
            for i, (a, added, row, _sid) in enumerate(
                    self._positions(rounds // len(COMMON_TYPES) + 1, stix_type)):
                extra = {"next": self._cursor(a, filters, added, row)} if i % 4 else {}
                typed.append(taxii(a, **{"match[type]": stix_type}, **extra))
        rng.shuffle(typed)
        paths["taxii match[type] common"] = cycle(typed)
        paths["taxii match[type] rare"] = [taxii(a, **{"match[type]": t}) for a, t in zip(
            cycle(self.alliances), cycle(RARE_TYPES), strict=True)]
        paths["taxii match[id]"] = [
            taxii(ids[i % len(ids)][0], **{"match[id]": ",".join(
                sid for a, sid in ids[i % len(ids): i % len(ids) + 3]
                if a == ids[i % len(ids)][0])}) for i in range(rounds)]
        versioned = []
        for version in ("first", "last", "all"):
            filters = Filters(versions=(version,))
            for i, (a, added, row, _sid) in enumerate(self._positions(rounds // 3 + 1)):
                extra = {"next": self._cursor(a, filters, added, row)} if i % 4 else {}
                versioned.append(taxii(a, **{"match[version]": version}, **extra))
        rng.shuffle(versioned)
        paths["taxii match[version]"] = cycle(versioned)
        filters = Filters(spec_versions=("2.1",))
        paths["taxii match[spec_version]"] = [
            taxii(a, **{"match[spec_version]": "2.1"},
                  **({"next": self._cursor(a, filters, added, row)} if i % 4 else {}))
            for i, (a, added, row, _sid) in enumerate(spots[rounds: rounds * 2])]
        paths["taxii added_after"] = [taxii(a, added_after=rfc3339(added))
                                      for a, added, _row, _sid in spots[rounds: rounds * 2]]
        paths["taxii match combined"] = [
            taxii(a, added_after=rfc3339(added), **{
                "match[type]": cycle(COMMON_TYPES + RARE_TYPES[:1])[i],
                "match[version]": "last", "match[spec_version]": "2.1"})
            for i, (a, added, _row, _sid) in enumerate(spots[:rounds])]

        # The feed: random positions, common and rare filter values.
        principal = Principal.of(self.reader)
        notes = db.session.execute(readable_notes(principal).with_only_columns(
            Note.created_at, Note.id).order_by(func.random()).limit(rounds)).all()
        cursors = [f"{int(created.timestamp() * 1_000_000)}_{nid}" for created, nid in notes]

        def feed(n=rounds, **query):
            return [("web", "/notes/", {k: v[i] if isinstance(v, list) else v
                                        for k, v in query.items()}) for i in range(n)]

        def common(facet, k=5, rare=False):
            return db.session.scalars(
                select(NoteFacet.value).where(NoteFacet.facet == facet)
                .group_by(NoteFacet.value)
                .order_by(func.count().asc() if rare else func.count().desc(), NoteFacet.value)
                .limit(k)).all()

        def ranges(n=rounds):
            end = datetime.now(UTC).date()
            found = []
            for _ in range(n):
                since = end - timedelta(days=rng.randint(7, 360))
                found.append((str(since), str(min(end, since + timedelta(
                    days=rng.randint(7, 90))))))
            return found

        befores = [""] * (rounds // 5) + cursors[: rounds - rounds // 5]
        paths["feed"] = [("web", "/notes/", {"before": b} if b else {}) for b in befores]
        types = [t for t in common("type", 8) if t in COMMON_TYPES + ("ipv4-addr",
                                                                         "domain-name")]
        paths["feed type"] = feed(type=cycle(types or ["indicator"]), before=cycle(befores))
        paths["feed tlp"] = feed(tlp=cycle(TLPS), before=cycle(befores))
        paths["feed alliance"] = feed(alliance=cycle(str(a) for a in self.alliances),
                                      before=cycle(befores))
        for name, facet in (("sector", "sector"), ("country", "country"), ("tag", "policy_tag")):
            paths[f"feed {name}"] = feed(**{name: cycle(common(facet))}, before=cycle(befores))
        dates = ranges()
        paths["feed dates"] = feed(since=[d[0] for d in dates], until=[d[1] for d in dates])
        paths["feed type+tlp"] = feed(type=cycle(types or ["indicator"]),
                                      tlp=cycle(TLPS[:4] * 2 + TLPS[4:]))
        paths["feed alliance+dates"] = feed(alliance=cycle(str(a) for a in self.alliances),
                                            since=[d[0] for d in dates],
                                            until=[d[1] for d in dates])
        paths["feed tag+type"] = feed(tag=cycle(common("policy_tag")),
                                      type=cycle(list(reversed(types or ["indicator"]))))
        sectors, countries, tags = common("sector"), common("country"), common("policy_tag")
        wide = ranges()  # the combination of all seven: wider ranges, or nothing matches
        paths["feed all filters"] = feed(
            type=cycle(types or ["indicator"]), tlp=cycle(TLPS[:4]),
            alliance=cycle(str(a) for a in self.alliances), sector=cycle(sectors),
            country=cycle(countries), tag=cycle(tags), since=[d[0] for d in wide],
            until=[str(datetime.now(UTC).date())] * rounds)
        rare = ([{"type": t} for t in ("campaign", "grouping")]
                + [{"country": c} for c in common("country", 2, rare=True)]
                + [{"sector": s} for s in common("sector", 2, rare=True)]
                + [{"type": t} for t in common("type", 2, rare=True)])
        paths["feed rare values"] = [("web", "/notes/", q) for q in cycle(rare)]

        # Search: words and observable values.
        paths["search common word"] = feed(q=cycle(COMMON_WORDS), before=cycle(
            [""] * 3 + cursors[:7]))
        paths["search rare word"] = feed(q=cycle(self.made["rare_words"]))
        values = db.session.scalars(select(Observable.value).order_by(func.random())
                                    .limit(rounds)).all()
        paths["search value"] = feed(q=cycle(values))
        shared = db.session.scalars(select(Observable.value).group_by(Observable.value)
                                    .order_by(func.count().desc()).limit(9)).all()
        paths["search common value"] = feed(q=cycle(shared + [self.made["shared_value"]]))
        for path in paths.values():  # `before: ""` is the first page: no parameter
            for _client, _url, query in path:
                for key in [k for k, v in query.items() if v == ""]:
                    del query[key]

        # Note pages: the notes of 1,000 objects, and notes holding the shared value.
        large = db.session.scalars(select(Note).where(
            Note.report_id.in_(self.made["large_notes"]))).all()
        paths["note page 1,000 objects"] = [("web", f"/notes/{n.uuid}", {})
                                            for n in cycle(large, max(20, rounds // 2))]
        holding = db.session.scalars(readable_notes(principal).where(Note.id.in_(
            select(Observable.note_id).where(Observable.value == self.made["shared_value"])))
            .order_by(func.random()).limit(rounds)).all()
        paths["correlation shared value"] = [("web", f"/notes/{n.uuid}", {})
                                             for n in cycle(holding)]

        # The dashboards, per role, in both windows, and every chart's data endpoint.
        from alliance.dashboard import services as dashboards

        windows = cycle(["30", "90"])
        for name, client, url in (("analyst", "web", "/"),
                                  ("coordinator", "coord", "/dashboard/alliances"),
                                  ("platform", "admin", "/dashboard/platform")):
            paths[f"dashboard {name}"] = [(client, url, {"days": d}) for d in windows]
        charts = ([("web", c, {}) for c in dashboards.ANALYST_CHARTS]
                  + [("coord", c, {}) for c in dashboards.COORDINATOR_CHARTS]
                  + [("coord", c, {"alliance": self.coordinated})
                     for c in dashboards.ALLIANCE_CHARTS]
                  + [("admin", c, {}) for c in dashboards.PLATFORM_CHARTS])
        paths["dashboard chart data"] = [
            (client, f"/dashboard/data/{chart}.json", query | {"days": d})
            for (client, chart, query), d in zip(cycle(charts), windows, strict=True)]
        self.shared_notes = db.session.scalar(select(func.count(func.distinct(
            Observable.note_id))).where(Observable.value == self.made["shared_value"]))
        return paths

    def get(self, client: str, url: str, query: dict) -> float:
        """One request; its time in ms. Every answer must be a 200."""
        client = {"web": self.web, "api": self.api, "coord": self.coord,
                  "admin": self.admin}[client]
        start = time.perf_counter()
        response = client.get(url, query_string=query)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise AssertionError(f"{url} {query} at {self.notes:,} notes: "
                                 f"{response.status_code} {response.text[:300]}")
        return elapsed


# --- the run --------------------------------------------------------------------------------

def measure(sizes: list[Size], rounds: int) -> dict[str, dict[int, list[float]]]:
    """Every path at every size, the sizes in turn request by request."""
    asked = {s.notes: s.requests(rounds) for s in sizes}
    names = list(asked[sizes[0].notes])
    found = {}
    for name in names:
        times = {s.notes: [] for s in sizes}
        lists = {s.notes: asked[s.notes][name] for s in sizes}
        for size in sizes:  # warm up: the first requests of this path, untimed
            for request in lists[size.notes][:3]:
                size.get(*request)
        count = min(len(v) for v in lists.values())
        for i in range(count):
            for size in sizes:
                times[size.notes].append(size.get(*lists[size.notes][i]))
        found[name] = times
        small, large = sizes[0].notes, sizes[-1].notes
        (s50, s95), (l50, l95) = _percentiles(times[small]), _percentiles(times[large])
        print(f"paths  {name:28} " + "   ".join(
            f"{n:>9,}: p50 {p50:7.2f} p95 {p95:7.2f} ms" for n, (p50, p95) in (
                (small, (s50, s95)), (large, (l50, l95))))
              + f"   growth p50 {l50 / s50:5.2f}x p95 {l95 / s95:5.2f}x"
              + ("" if max(l50 / s50, l95 / s95) <= GOAL_RATIO
                 else "   (counts over a window)" if name in WINDOW_COUNTS else "   PAST 1.5x"),
              flush=True)
    return found


def measure_exports(sizes: list[Size]) -> list[dict]:
    """Issue 23: the feed's export of everything the reader may read, streamed as a client
    reads it, at each size: lines, bytes, seconds and the most memory traced (tracemalloc)
    while it streams. Memory is steady when it does not follow the rows: the goal is the
    larger size's peak within GOAL_RATIO of the smaller's."""
    import gc
    import tracemalloc

    found = []
    for fmt, url in EXPORTS:
        row = {"format": fmt, "url": url}
        for size in sizes:
            gc.collect()
            tracemalloc.start()
            start = time.perf_counter()
            try:
                response = size.web.get(url, buffered=False)
                if response.status_code != 200:
                    raise AssertionError(f"{url} at {size.notes:,} notes: "
                                         f"{response.status_code}")
                lines = count = 0
                for chunk in response.iter_encoded():
                    lines += chunk.count(b"\n")
                    count += len(chunk)
                response.close()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            row[size.notes] = {"lines": lines, "bytes": count, "peak_mb": round(peak / 2**20, 2),
                               "seconds": round(time.perf_counter() - start, 1)}
            print(f"paths  export {fmt:4} {size.notes:>9,} notes: {lines:,} lines, "
                  f"{count / 2**20:,.1f} MB in {row[size.notes]['seconds']} s, peak traced "
                  f"{row[size.notes]['peak_mb']} MB", flush=True)
        small, large = row[sizes[0].notes], row[sizes[-1].notes]
        row["rows_ratio"] = round(large["bytes"] / max(1, small["bytes"]), 2)  # the volume
        row["memory_ratio"] = round(large["peak_mb"] / max(0.01, small["peak_mb"]), 2)
        row["meets_goal"] = row["memory_ratio"] <= GOAL_RATIO
        found.append(row)
    return found


def page_goals(found: dict, large: int) -> list[dict]:
    """Issue 23: the p95 of the dashboards and the note page at the larger size."""
    rows = []
    for name in PAGE_PATHS:
        p95 = round(_percentiles(found[name][large])[1], 2)
        rows.append({"path": name, "notes": large, "p95_ms": p95, "goal_ms": PAGE_P95_MS,
                     "meets_goal": p95 < PAGE_P95_MS})
    return rows


def growth(found: dict, small: int, large: int) -> list[dict]:
    rows = []
    for name, times in found.items():
        (s50, s95), (l50, l95) = _percentiles(times[small]), _percentiles(times[large])
        p50, p95 = round(l50 / s50, 2), round(l95 / s95, 2)
        rows.append({"path": name, "from": small, "to": large, "p50_ratio": p50,
                     "p95_ratio": p95, "goal_ratio": GOAL_RATIO,
                     "meets_goal": name in WINDOW_COUNTS or (
                         p50 <= GOAL_RATIO and p95 <= GOAL_RATIO)})
    return rows


def chart(results: dict, paths: list[Path]) -> None:
    """The growth of each path, p50 and p95 side by side, against the 1.5x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["growth"]
    names = [r["path"] for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(10, 0.45 * len(rows) + 2), 6))
    width = 0.4
    for offset, key, label in ((-width / 2, "p50_ratio", "p50"), (width / 2, "p95_ratio", "p95")):
        values = [r[key] for r in rows]
        bars = ax.bar([x + offset for x in xs], values, width, label=label)
        for bar, value in zip(bars, values, strict=True):
            if value > GOAL_RATIO:
                bar.set_edgecolor("red")
                bar.set_linewidth(1.5)
    ax.axhline(GOAL_RATIO, color="red", linewidth=1, linestyle="--", label="goal 1.5x")
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"latency at {results['sizes'][-1]:,} / at {results['sizes'][0]:,} notes")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"CyberPeace Alliance: growth of each read path, {results['db']}, "
                 f"{results['sizes'][0]:,} -> {results['sizes'][-1]:,} notes "
                 f"({results['when']}, {results['cpus']} CPUs, load {results['load_start'][0]})",
                 fontsize=9)
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)


def bench_paths(settings: dict) -> dict:
    from bench.scale import Databases

    sizes = settings["sizes"]
    if len(sizes) != 2:
        raise SystemExit(f"BENCH_PATH_SIZES takes two sizes, not {sizes}")
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": os.uname().machine, "cpus": os.cpu_count(), "db": settings["db"],
               "sizes": sizes, "rounds": settings["rounds"], "load_start": _load(),
               "runs": []}
    started = time.perf_counter()
    with Databases(settings["db"]) as databases:
        filled = []
        try:
            for notes in sizes:
                print(f"paths  {settings['db']} {notes:,} notes: filling ...", flush=True)
                size = Size(databases, notes, settings)
                filled.append(size)
                print(f"paths  {settings['db']} {notes:,} notes: {size.made['objects']:,} "
                      f"objects in {size.fill_s:,.1f} s; load {_load()}", flush=True)
            found = measure(filled, settings["rounds"])
            results["exports"] = measure_exports(filled)
            for size in filled:
                results["runs"].append({
                    "notes": size.notes, "objects": size.made["objects"],
                    "shared_value_notes": size.shared_notes, "fill_s": round(size.fill_s, 1),
                    "figures": {name: dict(zip(("p50_ms", "p95_ms"), (
                        round(v, 2) for v in _percentiles(times[size.notes])), strict=True))
                        | {"n": len(times[size.notes])} for name, times in found.items()}})
        finally:
            for size in filled:
                size.drop(databases)
    results["growth"] = growth(found, sizes[0], sizes[-1])
    results["pages"] = page_goals(found, sizes[-1])
    results["failed"] = ([r["path"] for r in results["growth"] if not r["meets_goal"]]
                         + [f"{r['path']} p95 >= {PAGE_P95_MS:.0f} ms" for r in results["pages"]
                            if not r["meets_goal"]]
                         + [f"export {r['format']} memory" for r in results["exports"]
                            if not r["meets_goal"]])
    results["load_end"] = _load()
    results["seconds"] = round(time.perf_counter() - started)
    _print_table(results)
    return results


def _print_table(results: dict) -> None:
    small, large = results["runs"][0], results["runs"][-1]
    print(f"\nread paths, {results['db']}: {small['notes']:,} notes ({small['objects']:,} "
          f"objects) against {large['notes']:,} ({large['objects']:,}); ms; load avg start "
          f"{results['load_start']} end {results['load_end']}")
    print(f"{'path':28} {'p50':>9} {'p95':>9} {'p50':>9} {'p95':>9}   growth p50   p95")
    for row in results["growth"]:
        a, b = small["figures"][row["path"]], large["figures"][row["path"]]
        print(f"{row['path']:28} {a['p50_ms']:9.2f} {a['p95_ms']:9.2f} {b['p50_ms']:9.2f} "
              f"{b['p95_ms']:9.2f}   {row['p50_ratio']:9.2f}x {row['p95_ratio']:5.2f}x"
              + ("" if row["meets_goal"] else f"   (goal <= {GOAL_RATIO}x)"))
    print(f"\npages at {large['notes']:,} notes: p95 (goal < {PAGE_P95_MS:.0f} ms)")
    for row in results["pages"]:
        print(f"{row['path']:28} {row['p95_ms']:9.2f}" + ("" if row["meets_goal"] else "   PAST"))
    print(f"\nexports of everything the reader may read, streamed: peak traced memory "
          f"(goal: within {GOAL_RATIO}x while the bytes grow)")
    for row in results["exports"]:
        a, b = row[small["notes"]], row[large["notes"]]
        print(f"{row['format']:5} {a['lines']:>9,} lines {a['peak_mb']:7.2f} MB   "
              f"{b['lines']:>9,} lines {b['peak_mb']:7.2f} MB   bytes {row['rows_ratio']}x "
              f"memory {row['memory_ratio']}x" + ("" if row["meets_goal"] else "   PAST"))


def main() -> dict:
    results = bench_paths(_settings())
    out = ROOT / "bench" / "results"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"paths-{stamp}.json").write_text(json.dumps(results, indent=2))
    chart(results, [out / f"paths-{stamp}.png", out / "paths-latest.png"])
    print(f"results written to bench/results/paths-{stamp}.json and paths-latest.png "
          f"({results['seconds']:,} s)")
    if results["failed"]:
        print(f"paths  growth past {GOAL_RATIO}x for: {', '.join(results['failed'])}")
    return results


if __name__ == "__main__":
    try:
        failed = main()["failed"]
    finally:
        if _OWN_TMP:
            shutil.rmtree(_OWN_TMP, ignore_errors=True)
    if failed:
        sys.exit(f"growth past {GOAL_RATIO}x for: {', '.join(failed)}")
