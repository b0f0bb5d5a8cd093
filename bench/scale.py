"""The scale benchmark: latency against data size, on SQLite and PostgreSQL.

For each database (BENCH_SCALE_DBS, default "sqlite,postgresql") and each number of stored
STIX objects (BENCH_SCALE_SIZES, default "10000,100000,1000000"; BENCH_SCALE_SIZES_SQLITE or
BENCH_SCALE_SIZES_POSTGRESQL for one database only), a fresh database is filled
by bench/benchdata.py's generate() (~10 objects per note, 100
organisations, 30 alliances) and then, for the generated reader (a member of 5 alliances),
in-process through the real views and services, over BENCH_SCALE_ROUNDS (100) requests each:

  taxii first / next      GET .../objects/?limit=100, the first page and the page after it
  taxii first / next type the same with match[type]=indicator
  feed                    the notes feed page
  search                  a full-text search (one word) and an observable value search
  note page               a note page with its correlations (notes sharing an observable),
                          for a note of 8-12 objects at every size
  digest                  build_digest of a day's period, per user (30 users)
  import                  objects/s of post_note with 1,000 indicators into the filled database

PostgreSQL runs in a throwaway cluster (tests/servers.py PostgresServer), with VACUUM ANALYZE
after the fill (as autovacuum would do a little later: the figures are not taken while it
works through the fresh rows). Results: bench/results/scale-<timestamp>.json, a chart of p95
against size for both databases (bench/results/scale-latest.png and a timestamped copy), a printed
table and the ratio largest/smallest size. Goals (issue 6): TAXII and feed p95 < 50 ms at
1,000,000 objects on PostgreSQL, and the 1,000,000 figure within 1.5x of the 10,000 one.

    .venv/bin/python bench/scale.py
    BENCH_SCALE_SIZES=10000,100000 BENCH_SCALE_DBS=sqlite .venv/bin/python bench/scale.py
"""
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
_OWN_TMP = None
if not os.environ.get("INSTANCE_PATH"):  # bench/run.py sets it
    _OWN_TMP = os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="alliance-bench-scale-")
os.environ["ALLIANCE_ENV"] = "testing"
# Figures, not a log of every request and SMTP line (LOG_LEVEL=INFO shows the access log).
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("DATABASE_URL", None)

TAXII = "application/taxii+json;version=2.1"
OBJECTS_PER_NOTE = 10
ORGS, ALLIANCES = 100, 30
GOAL_MS = 50.0
GOAL_RATIO = 1.5
PAGES = ("taxii first", "taxii next", "taxii first type", "taxii next type", "feed",
         "search words", "search value", "note page", "digest")
GOAL_PAGES = ("taxii first", "taxii next", "taxii first type", "taxii next type", "feed")


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[math.ceil(len(ordered) * 0.95) - 1]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Databases:
    """Fresh databases, one per measurement: SQLite files, or databases in one throwaway
    PostgreSQL cluster."""

    def __init__(self, kind: str):
        self.kind, self.server, self.workdir = kind, None, None
        self.tmp = os.environ["INSTANCE_PATH"]

    def __enter__(self):
        if self.kind == "postgresql":
            from tests.servers import PostgresServer

            self.workdir = tempfile.mkdtemp(prefix="alliance-bench-pg-")
            self.server = PostgresServer(self.workdir).start()
        return self

    def __exit__(self, *exc):
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def new(self, name: str) -> str:
        if self.kind == "sqlite":
            return "sqlite:///" + os.path.join(self.tmp, f"scale-{name}.db")
        from sqlalchemy import create_engine, text

        admin = create_engine(self.server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE scale_{name}"))
        admin.dispose()
        return self.server.url.rsplit("/", 1)[0] + f"/scale_{name}"

    def drop(self, url: str) -> None:
        if self.kind == "sqlite":
            path = url[len("sqlite:///"):]
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
            return
        from sqlalchemy import create_engine, text

        admin = create_engine(self.server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {url.rsplit('/', 1)[1]}"))
        admin.dispose()


def _quiet() -> None:
    """No access log or migration chatter between the figures."""
    import logging

    for name in ("alliance", "alembic", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _app(url: str):
    from flask_migrate import upgrade

    from alliance import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": url,
                      "MAIL_URL": os.path.join(os.environ["INSTANCE_PATH"], "maildir"),
                      "TAXII_RATE_LIMIT": "100000000 per minute",
                      "RATELIMIT_STORAGE_URI": "memory://"})
    _quiet()
    with app.app_context():
        upgrade()
    _quiet()
    return app


def fill(app, objects: int) -> tuple[dict, float]:
    from bench.benchdata import Plan, analyze, generate

    notes = max(1, objects // OBJECTS_PER_NOTE)
    done = [0]

    def progress(n):
        done[0] += n
        if done[0] % 20000 < n or done[0] == notes:
            print(f"    {done[0]:,}/{notes:,} notes", file=sys.stderr, flush=True)

    with app.app_context():
        start = time.perf_counter()
        made = generate(Plan(notes=notes, orgs=ORGS, alliances=ALLIANCES, seed=1,
                             objects_per_note=OBJECTS_PER_NOTE), progress=progress)
        analyze()
        return made, time.perf_counter() - start


def _timed(client, path, rounds: int, **kwargs) -> list[float]:
    client.get(path, **kwargs)  # warm up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(path, **kwargs)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return times


def _indicators(n: int) -> list[dict]:
    stamp = "2024-06-01T00:00:00.000Z"
    return [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
             "created": stamp, "modified": stamp, "name": f"scale {i}",
             "pattern": f"[ipv4-addr:value = '10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}']",
             "pattern_type": "stix", "valid_from": stamp} for i in range(n)]


def measure(app, made: dict, rounds: int) -> dict[str, dict]:
    """p50/p95 (ms) of each page for the reader, digest build per user, import rate."""
    from sqlalchemy import func, select

    from alliance.alliances.models import Alliance
    from alliance.apikeys.services import create_key
    from alliance.auth.models import User
    from alliance.digests.building import build_digest
    from alliance.extensions import db
    from alliance.notes import posting, reading
    from alliance.notes.models import Observable
    from alliance.sharing.policy import Principal
    from alliance.taxii.services import alliance_collection_id
    from tests import factories

    found = {}
    with app.app_context():
        reader = db.session.scalar(select(User).where(User.email == made["reader"]["email"]))
        alliance = db.session.scalar(select(Alliance).where(
            Alliance.slug == made["reader"]["alliances"][0]))
        _key, plaintext = create_key(reader, "scale bench")
        web = app.test_client()
        factories.login(web, reader)
        api = app.test_client()
        api.environ_base.update(HTTP_AUTHORIZATION=f"Bearer {plaintext}", HTTP_ACCEPT=TAXII)
        url = f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"
        for name, extra in (("", {}), (" type", {"match[type]": "indicator"})):
            first = api.get(url, query_string={"limit": "100", **extra}).get_json()
            found[f"taxii first{name}"] = _timed(api, url, rounds,
                                                 query_string={"limit": "100", **extra})
            if first.get("next"):  # a tiny collection has one page only
                found[f"taxii next{name}"] = _timed(api, url, rounds, query_string={
                    "limit": "100", "next": first["next"], **extra})
        found["feed"] = _timed(web, "/notes/", rounds)
        found["search words"] = _timed(web, "/notes/", rounds, query_string={"q": "phishing"})
        value = db.session.scalar(select(Observable.value).group_by(Observable.value)
                                  .order_by(func.count().desc()).limit(1).offset(20))
        found["search value"] = _timed(web, "/notes/", rounds, query_string={"q": value})
        principal = Principal.of(reader)
        notes, _cursor = reading.feed(principal, limit=100)
        # A note of the same shape at every size (8-12 objects, with correlations): the page's
        # cost follows the note's size, and the newest note differs from one fill to the next.
        shaped = [n for n in notes if 8 <= len(reading.note_objects(n)) <= 12]
        with_related = next((n for n in shaped if reading.correlated(principal, n)),
                            next((n for n in notes if reading.correlated(principal, n)),
                                 notes[0]))
        found["note page"] = _timed(web, f"/notes/{with_related.uuid}", max(20, rounds // 2))
        # Digests: a day's period ending now, for 30 users who may read.
        users = [u for u in db.session.scalars(select(User).order_by(User.id)) if u.can_act]
        end = datetime.now(UTC)
        times = []
        for user in users[:: max(1, len(users) // 30)][:30]:
            start = time.perf_counter()
            build_digest(user, end - timedelta(days=1), end)
            times.append((time.perf_counter() - start) * 1000)
        found["digest"] = times
        db.session.remove()
        # Import: 1,000 indicators posted into the filled database.
        reader = db.session.get(User, reader.id)
        objects = _indicators(1000)
        start = time.perf_counter()
        posting.post_note(reader, posting.NoteDraft(
            title="scale import", tlp="GREEN", alliance_ids=[alliance.id], objects=objects),
            alerts=False)
        rate = len(objects) / (time.perf_counter() - start)
        db.session.remove()
        db.engine.dispose()
    rows = {name: dict(zip(("p50_ms", "p95_ms"), (round(v, 2) for v in _percentiles(t)),
                           strict=True)) | {"n": len(t)} for name, t in found.items()}
    rows["import"] = {"objects_per_s": round(rate)}
    return rows


def bench_scale(sizes, kinds, rounds: int) -> dict:
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": os.uname().machine, "cpus": os.cpu_count(), "load_start": _load(),
               "runs": []}
    for kind in kinds:
        own = os.environ.get(f"BENCH_SCALE_SIZES_{kind.upper()}")
        with Databases(kind) as databases:
            for size in sorted([int(s) for s in own.split(",")] if own else sizes):
                url = databases.new(f"{size}")
                print(f"scale  {kind:10} {size:>9,} objects: filling ...", flush=True)
                app = _app(url)
                made, seconds = fill(app, size)
                load = _load()
                print(f"scale  {kind:10} {size:>9,} objects: filled {made['objects']:,} objects"
                      f" ({made['notes']:,} notes) in {seconds:,.1f} s = "
                      f"{made['objects'] / seconds:,.0f} objects/s; load {load}", flush=True)
                figures = measure(app, made, rounds)
                run = {"db": kind, "objects": made["objects"], "size": size,
                       "notes": made["notes"], "fill_s": round(seconds, 1),
                       "fill_objects_per_s": round(made["objects"] / seconds),
                       "load": load, "load_after": _load(), "figures": figures}
                results["runs"].append(run)
                _print_run(run)
                databases.drop(url)
    results["load_end"] = _load()
    results["ratios"] = _ratios(results["runs"])
    _print_table(results)
    return results


def _print_run(run: dict) -> None:
    for name in PAGES:
        f = run["figures"].get(name)
        if f is None:
            continue
        goal = ""
        if name in GOAL_PAGES and run["db"] == "postgresql":
            goal = "  ok" if f["p95_ms"] < GOAL_MS else f"  MISSED (goal p95 < {GOAL_MS:.0f} ms)"
        print(f"scale  {run['db']:10} {run['size']:>9,}  {name:17} p50 {f['p50_ms']:8.2f} ms"
              f"   p95 {f['p95_ms']:8.2f} ms{goal}", flush=True)
    print(f"scale  {run['db']:10} {run['size']:>9,}  {'import':17} "
          f"{run['figures']['import']['objects_per_s']:,} objects/s", flush=True)


def _ratios(runs: list[dict]) -> list[dict]:
    rows = []
    for kind in sorted({r["db"] for r in runs}):
        mine = sorted((r for r in runs if r["db"] == kind), key=lambda r: r["size"])
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        for name in PAGES:
            if name not in small["figures"] or name not in large["figures"]:
                continue
            a, b = small["figures"][name]["p95_ms"], large["figures"][name]["p95_ms"]
            rows.append({"db": kind, "page": name, "from": small["size"], "to": large["size"],
                         "p95_ratio": round(b / a, 2) if a else None})
    return rows


def _print_table(results: dict) -> None:
    runs = results["runs"]
    sizes = sorted({r["size"] for r in runs})
    print("\np95 latency (ms) by stored objects" + f"   load avg start {results['load_start']}"
          f" end {results['load_end']}")
    header = f"{'page':17} {'db':10} " + " ".join(f"{s:>10,}" for s in sizes) + "   ratio"
    print(header)
    for name in PAGES:
        for kind in sorted({r["db"] for r in runs}):
            cells = []
            for size in sizes:
                run = next((r for r in runs if r["db"] == kind and r["size"] == size), None)
                f = run["figures"].get(name) if run else None
                cells.append(f"{f['p95_ms']:10.2f}" if f else " " * 10)
            ratio = next((r["p95_ratio"] for r in results["ratios"]
                          if r["db"] == kind and r["page"] == name), None)
            flag = "" if ratio is None or name not in GOAL_PAGES else (
                "  ok" if ratio <= GOAL_RATIO else f"  (goal <= {GOAL_RATIO}x)")
            print(f"{name:17} {kind:10} " + " ".join(cells)
                  + (f"   {ratio:.2f}x{flag}" if ratio is not None else ""))
    for kind in sorted({r["db"] for r in runs}):
        cells = [next((f"{r['figures']['import']['objects_per_s']:>10,}" for r in runs
                       if r["db"] == kind and r["size"] == s), " " * 10) for s in sizes]
        print(f"{'import obj/s':17} {kind:10} " + " ".join(cells))
        cells = [next((f"{r['fill_objects_per_s']:>10,}" for r in runs
                       if r["db"] == kind and r["size"] == s), " " * 10) for s in sizes]
        print(f"{'bench-data obj/s':17} {kind:10} " + " ".join(cells))


def chart(results: dict, paths: list[Path]) -> None:
    """p95 against stored objects, one panel per database, one line per page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({r["db"] for r in results["runs"]})
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 5), squeeze=False,
                             sharey=True)
    for ax, kind in zip(axes[0], kinds, strict=True):
        runs = sorted((r for r in results["runs"] if r["db"] == kind), key=lambda r: r["size"])
        xs = [r["objects"] for r in runs]
        for name in PAGES:
            ys = [r["figures"].get(name, {}).get("p95_ms", float("nan")) for r in runs]
            ax.plot(xs, ys, marker="o",
                    linestyle="-" if name in GOAL_PAGES else "--", label=name)
        ax.axhline(GOAL_MS, color="red", linewidth=0.8, linestyle=":", label="goal 50 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(kind)
        ax.set_xlabel("stored STIX objects")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("p95 latency (ms)")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"CyberPeace Alliance: p95 latency against data size ({results['when']}, "
                 f"{results['cpus']} CPUs, load {results['load_start'][0]})", fontsize=10)
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> dict:
    sizes = [int(s) for s in os.environ.get("BENCH_SCALE_SIZES",
                                            "10000,100000,1000000").split(",")]
    kinds = [k.strip() for k in os.environ.get("BENCH_SCALE_DBS", "sqlite,postgresql").split(",")]
    rounds = int(os.environ.get("BENCH_SCALE_ROUNDS", "100"))
    results = bench_scale(sizes, kinds, rounds)
    out = ROOT / "bench" / "results"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out / f"scale-{stamp}.json").write_text(json.dumps(results, indent=2))
    chart(results, [out / f"scale-{stamp}.png", out / "scale-latest.png"])
    print(f"results written to bench/results/scale-{stamp}.json and scale-latest.png")
    return results


if __name__ == "__main__":
    try:
        main()
    finally:
        if _OWN_TMP:
            shutil.rmtree(_OWN_TMP, ignore_errors=True)
