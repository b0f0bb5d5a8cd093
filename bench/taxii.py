"""The TAXII 2.1 benchmark: our /taxii2/ API next to medallion 3 (the OASIS reference TAXII
2.1 server, its memory backend), in one run. Both are served the same way — werkzeug's
threaded WSGI server, each in a process of its own on loopback — and read by the same client
(`requests`, one keep-alive session per server).

  post   objects accepted per second: 10,000 generated indicators (like bench/run.py's
         indicators_bundle) POSTed in envelopes of 1,000 into an empty collection, from the
         first request to the last 202 status.
  page   p50/p95 of GET .../objects/?limit=100, the first page and a deep `next` page (at 90%
         of the collection), with 10,000 and 100,000 objects in the collection
         (BENCH_TAXII_SIZES), over BENCH_TAXII_ROUNDS (200) requests each.
  by id  ours only: p50/p95 of GET .../objects/{id}/ and .../objects/{id}/versions/, each
         request for another object of the collection (BENCH_TAXII_ROUNDS ids), at each size,
         and their growth from the smallest size to the largest: past 1.5x fails the run.

The collections are filled directly (ours: the rows post_note writes — notes of 1,000 objects,
a report and 999 indicators, in the key's alliance, plus RED notes worth 10% more objects that
the collection must leave out; medallion: its memory backend's JSON data file with the same
number of objects and their manifest entries), since posting 100,000 objects is not what is
measured here.

Medallion's first page is quadratic in the collection size (BasicFilter sorts and paginates by
scanning the manifest for every object, parsing timestamps each time: ~8 s at 1,000 objects,
~100 s at 4,000 on this kind of machine), and every request deep-copies the collection twice
(collection_exists, permission_to_read). Its pages are therefore timed within a budget
(BENCH_TAXII_MEDALLION_BUDGET seconds per size and page, default 60; the server is killed
when a request outlasts it); the figures say how many requests finished. When not one first
page finished, an estimate is printed, scaled quadratically from one first page at
BENCH_TAXII_MEDALLION_PROBE (1,000) objects. Its deep pages are measured for real: the `next`
sessions (medallion keeps them in memory; a request pops the next page from the stored list)
are created in the server process as its first-page request would leave them, one per timed
request, starting 90% of the way in.

    .venv/bin/python bench/taxii.py
    BENCH_TAXII_SIZES=2000,5000 BENCH_TAXII_POST=2000 .venv/bin/python bench/taxii.py
"""
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
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
if not os.environ.get("INSTANCE_PATH"):  # bench/run.py sets it; the servers inherit it
    _OWN_TMP = os.environ["INSTANCE_PATH"] = tempfile.mkdtemp(prefix="alliance-bench-taxii-")
os.environ["ALLIANCE_ENV"] = "testing"
# Figures, not a log of every request and SMTP line (LOG_LEVEL=INFO shows the access log).
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("DATABASE_URL", None)

import orjson  # noqa: E402
import requests  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
ENVELOPE = 1000  # objects per POST, and per note in the filled collections
LIMIT = 100
DEEP = 0.9  # the deep page starts this far into the collection
STAMP = "2024-01-01T00:00:00.000Z"
START = datetime(2024, 1, 1, tzinfo=UTC)
MEDALLION_USER, MEDALLION_PASSWORD = "bench", "bench-password"  # noqa: S105 (a local server)
API_ROOT = "api1"
MEDALLION_COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
GOAL_POST = "(goal > 1)"
RED_ONLY = "red-only"  # the name of every object of the filled RED notes
GOAL_PAGE = "(goal: ours faster; ours flat 10k->100k)"


def indicators(n: int, offset: int = 0) -> list[dict]:
    """Generated indicators, as bench/run.py's indicators_bundle makes them."""
    return [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
             "created": STAMP, "modified": STAMP, "name": f"203.0.{i // 250 % 250}.{i % 250}",
             "pattern": f"[ipv4-addr:value = '10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}']",
             "pattern_type": "stix", "valid_from": STAMP} for i in range(offset, offset + n)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tmp() -> str:
    return os.environ["INSTANCE_PATH"]


def _remove(*paths: str) -> None:
    """Drop a measurement's files once done (a 100,000-object database, medallion's data)."""
    for path in paths:
        for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
            if os.path.exists(name):
                os.remove(name)


# --- the servers --------------------------------------------------------------------------

def _our_app(db_path: str):
    from alliance import create_app

    # The rate limit stays on (its cost is part of every request) but high enough not to
    # answer 429 to a benchmark.
    return create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}",
                       "MAIL_URL": os.path.join(_tmp(), "maildir"),
                       "TAXII_RATE_LIMIT": "1000000 per minute"})


def _medallion_app(config_path: str, tokens_path: str | None):
    from medallion import application_instance, register_blueprints, set_config

    with open(config_path) as f:
        config = json.load(f)
    for part in ("users", "taxii", "backend"):
        set_config(application_instance, part, config)
    register_blueprints(application_instance)
    if tokens_path:
        # `next` sessions as medallion's first page leaves them (MemoryBackend.get_objects:
        # the objects after the page, sorted by date added, under the request's arguments
        # without limit), starting at the deep page; one per timed request, as a request
        # pops its page from the session.
        backend = application_instance.medallion_backend
        collection = backend.data[API_ROOT]["collections"][0]
        objects = collection["objects"]  # written in date-added order
        start = int(len(objects) * DEEP)
        count = int(os.environ.get("BENCH_TAXII_TOKENS", "0"))
        tokens = [backend.set_next(list(objects[start:]), {}) for _ in range(count)]
        Path(tokens_path).write_text(json.dumps(tokens))
    return application_instance


def serve(kind: str, arg: str, port: int, extra: str | None = None) -> None:
    """Run in a child process: one server until it is terminated."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = _our_app(arg) if kind == "ours" else _medallion_app(arg, extra)
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


class Server:
    """A server process of ours or medallion's on a free loopback port."""

    def __init__(self, kind: str, arg: str, extra: str | None = None, tokens: int = 0):
        self.kind, self.port = kind, _free_port()
        self.log = open(os.path.join(_tmp(), f"{kind}-{self.port}.log"), "w")  # noqa: SIM115 (closed in stop)
        env = dict(os.environ, BENCH_TAXII_TOKENS=str(tokens))
        args = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, arg,
                str(self.port)] + ([extra] if extra else [])
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,  # noqa: S603
                                     env=env, cwd=str(ROOT))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {kind} server stopped; see {self.log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"the {kind} server did not start; see {self.log.name}")
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- our side: a database with a user, an API key and an alliance ---------------------------

def _our_database(name: str):
    """A migrated SQLite file with a user, their API key and alliance. Returns the path, the
    key, the collection id and the ids needed to fill it."""
    from flask_migrate import upgrade

    from alliance.apikeys.services import create_key
    from alliance.taxii.services import alliance_collection_id
    from tests import factories

    path = os.path.join(_tmp(), f"{name}-{uuid.uuid4().hex[:6]}.db")
    app = _our_app(path)
    with app.app_context():
        upgrade()
        org = factories.make_org(f"Bench Org {uuid.uuid4().hex[:6]}")
        user = factories.make_user(org, f"bench-{uuid.uuid4().hex[:6]}@bench.example",
                                   role="org_admin")
        alliance = factories.make_alliance(user, slug=f"bench-{uuid.uuid4().hex[:6]}",
                                           name="Bench Alliance")
        _row, key = create_key(user, "bench")
        ids = {"org": org.id, "user": user.id, "alliance": alliance.id}
        collection = alliance_collection_id(alliance.id)
    return app, path, key, collection, ids


def fill_ours(app, size: int, ids: dict) -> int:
    """The rows post_note writes, straight into the tables: notes of ENVELOPE objects (a
    report and ENVELOPE - 1 indicators) in the alliance, `size` objects in all, with TLPs in
    rotation; and RED notes holding 10% more objects, which the collection must leave out.
    Returns the number of objects the collection serves."""
    from sqlalchemy import select

    from alliance.extensions import db
    from alliance.notes.models import Note, NoteAudience, NoteObject, StixObject
    from alliance.notes.storage import hash_body, insert_rows
    from alliance.taxii.collections import collect_every_note

    levels = ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT"]
    served = 0
    with app.app_context():
        made, n = 0, 0
        red_every = 10
        while made < size:
            red = n % red_every == red_every - 1
            count = min(ENVELOPE, size - made) if not red else ENVELOPE
            # A real post's date added has microseconds (utcnow()), as here.
            at = START + timedelta(seconds=n, microseconds=123_457)
            report_id = f"report--{uuid.uuid4()}"
            objects = indicators(count - 1, offset=made)
            if red:
                for o in objects:
                    o["name"] = RED_ONLY
            title = f"{RED_ONLY} {n}" if red else f"Bench upload {n}"
            report = {"type": "report", "spec_version": "2.1", "id": report_id,
                      "created": STAMP, "modified": STAMP, "name": title,
                      "published": STAMP, "report_types": ["indicator"],
                      "object_refs": [o["id"] for o in objects]}
            note = Note(report_id=report_id, organisation_id=ids["org"], author_id=ids["user"],
                        kind="bundle", title=title, description="",
                        tlp="RED" if red else levels[n % len(levels)],
                        types=["indicator", "report"], created_at=at, updated_at=at)
            note.audiences = [NoteAudience(alliance_id=ids["alliance"])]
            db.session.add(note)
            db.session.flush()
            insert_rows(StixObject.__table__, ("stix_id", "type", "modified", "body", "body_hash"),
                        [(o["id"], o["type"], o["modified"], o, hash_body(o))
                         for o in [report] + objects],
                        constants={"organisation_id": ids["org"], "first_note_id": note.id,
                                   "date_added": at})
            stored = db.session.scalars(select(StixObject.id).where(
                StixObject.first_note_id == note.id)).all()
            insert_rows(NoteObject.__table__, ("object_id",), [(i,) for i in stored],
                        constants={"note_id": note.id, "note_version": 1})
            if not red:
                made += count
                served += count
            n += 1
        # The collections TAXII pages walk, as posting fills them.
        collect_every_note()
        db.session.commit()
    return served


# --- medallion's side: its memory backend's data file ---------------------------------------

def medallion_config(name: str, objects: list[dict], added: list[str]) -> str:
    """A medallion configuration (users, page size, memory backend) whose data file holds one
    collection with these objects and their manifest entries. Returns its path."""
    data = {
        "/discovery": {"title": "medallion (bench)", "description": "",
                       "default": f"http://127.0.0.1/{API_ROOT}/",
                       "api_roots": [f"http://127.0.0.1/{API_ROOT}/"]},
        API_ROOT: {
            "information": {"title": "bench", "description": "", "versions": [TAXII],
                            "max_content_length": 100 * 1024 * 1024},
            "status": [],
            "collections": [{"id": MEDALLION_COLLECTION, "title": "bench", "description": "",
                             "can_read": True, "can_write": True, "media_types": [STIX],
                             "objects": objects,
                             "manifest": [{"id": o["id"], "date_added": when,
                                           "version": o["modified"], "media_type": STIX}
                                          for o, when in zip(objects, added, strict=True)]}],
        },
    }
    stem = os.path.join(_tmp(), f"medallion-{name}-{uuid.uuid4().hex[:6]}")
    Path(f"{stem}-data.json").write_bytes(orjson.dumps(data))
    config = {"backend": {"module": "medallion.backends.memory_backend",
                          "module_class": "MemoryBackend", "filename": f"{stem}-data.json",
                          "session_timeout": 3600, "check_interval": 60},
              "users": {MEDALLION_USER: MEDALLION_PASSWORD},
              "taxii": {"max_page_size": 1000}}
    Path(f"{stem}.json").write_text(json.dumps(config))
    return f"{stem}.json"


def medallion_objects(size: int) -> tuple[list[dict], list[str]]:
    """`size` indicators, added ENVELOPE at a time (one date added per envelope, as a POST
    leaves them), and their dates added."""
    objects = indicators(size)
    added = [(START + timedelta(seconds=i // ENVELOPE)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
             for i in range(size)]
    return objects, added


# --- the client ---------------------------------------------------------------------------

def _session(auth) -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = TAXII
    if isinstance(auth, str):
        session.headers["Authorization"] = f"Bearer {auth}"
    else:
        session.auth = auth
    return session


def post_rate(session, url: str, envelopes: list[bytes], per_envelope: int,
              warm_up: str) -> float:
    """Objects accepted per second over all envelopes (after one GET of warm_up, so that
    neither server's first request pays for its imports and connections)."""
    assert session.get(warm_up, timeout=60).status_code == 200
    start = time.perf_counter()
    for body in envelopes:
        response = session.post(url, data=body, headers={"Content-Type": TAXII}, timeout=3600)
        assert response.status_code == 202, (url, response.status_code, response.text[:300])
        status = response.json()
        assert status["success_count"] == per_envelope, (url, {k: status.get(k) for k in (
            "status", "success_count", "failure_count")})
    return per_envelope * len(envelopes) / (time.perf_counter() - start)


def percentiles(times: list[float]) -> tuple[float | None, float | None]:
    """p50 and nearest-rank p95, in ms (bench/run.py's p95 for 200 samples)."""
    if not times:
        return None, None
    ordered = sorted(times)
    return statistics.median(ordered), ordered[math.ceil(len(ordered) * 0.95) - 1]


def timed(session, url: str, params_list: list[dict], budget: float | None = None):
    """GET url once per params (in order); milliseconds per request and whether the budget
    (seconds, for all of them) ran out first. Every answer must be a full page."""
    times, began = [], time.perf_counter()
    for params in params_list:
        left = None if budget is None else budget - (time.perf_counter() - began)
        if left is not None and left <= 0:
            return times, True
        start = time.perf_counter()
        try:
            response = session.get(url, params=params, timeout=left or 3600)
        except requests.Timeout:
            return times, True
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        assert len(response.json().get("objects", [])) == LIMIT, (url, params)
    return times, False


def deep_cursor(session, url: str, size: int) -> str:
    """Walk our collection with pages of 1,000 to DEEP of the way in; the cursor there (our
    cursors name a position, not a page size, so it serves a limit=100 request as well).
    Checks on the way that nothing the collection must leave out is served."""
    seen, token, target = 0, None, int(size * DEEP)
    while seen < target:
        params = {"limit": min(1000, target - seen), **({"next": token} if token else {})}
        response = session.get(url, params=params, timeout=600)
        assert response.status_code == 200, response.text[:300]
        body = response.json()
        assert not any(o["name"].startswith(RED_ONLY) for o in body["objects"])
        seen += len(body["objects"])
        token = body["next"]
    return token


def _fmt(p50, p95) -> str:
    return "      n/a       " if p50 is None else f"{p50:7.1f}/{p95:7.1f} ms"


def _ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 2)


# --- the parts ----------------------------------------------------------------------------

def bench_post(count: int) -> dict:
    envelopes = [orjson.dumps({"objects": chunk})
                 for chunk in (indicators(ENVELOPE, i) for i in range(0, count, ENVELOPE))]
    _app, path, key, collection, _ids = _our_database("post")
    with Server("ours", path) as server:
        ours = post_rate(_session(key),
                         f"{server.base}/taxii2/api/collections/{collection}/objects/",
                         envelopes, ENVELOPE, f"{server.base}/taxii2/api/collections/")
    _remove(path)
    config = medallion_config("post", [], [])
    with Server("medallion", config) as server:
        theirs = post_rate(_session((MEDALLION_USER, MEDALLION_PASSWORD)),
                           f"{server.base}/{API_ROOT}/collections/{MEDALLION_COLLECTION}"
                           "/objects/", envelopes, ENVELOPE,
                           f"{server.base}/{API_ROOT}/collections/")
    _remove(config, config.replace(".json", "-data.json"))
    ratio = ours / theirs
    print(f"taxii  post {count:,} indicators   ours {ours:9,.0f} obj/s   medallion "
          f"{theirs:9,.0f} obj/s   ours/medallion = {ratio:6.2f} {GOAL_POST}", flush=True)
    return {"part": "post", "objects": count, "envelope": ENVELOPE, "ours_per_s": round(ours),
            "medallion_per_s": round(theirs), "ours_over_medallion": round(ratio, 2)}


def _sample_ids(app, count: int) -> list[str]:
    """`count` different ids the collection serves, spread over all of it (each request of
    the by-id timings asks for another object, as clients do)."""
    from sqlalchemy import func, select

    from alliance.extensions import db
    from alliance.notes.models import CollectionObject, StixObject

    with app.app_context():
        return db.session.scalars(select(StixObject.stix_id).join(
            CollectionObject, CollectionObject.object_id == StixObject.id).where(
            StixObject.type == "indicator").order_by(func.random()).limit(count)).all()


def timed_each(session, urls: list[str]) -> list[float]:
    """GET each url once; milliseconds per request. Every answer must hold the object."""
    times = []
    for url in urls:
        start = time.perf_counter()
        response = session.get(url, timeout=600)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return times


# Paths read by id: their p50 and p95 may grow at most this much from the smallest collection
# to the largest (issue 22: "within 1.5x").
GOAL_BY_ID = 1.5


def _ours_pages(size: int, rounds: int) -> dict:
    app, path, key, collection, ids = _our_database(f"pages-{size}")
    served = fill_ours(app, size, ids)
    sample = _sample_ids(app, rounds + 3)
    found = {}
    with Server("ours", path) as server:
        session = _session(key)
        url = f"{server.base}/taxii2/api/collections/{collection}/objects/"
        deep = deep_cursor(session, url, served)
        for page, params in (("first", {"limit": LIMIT}), ("deep", {"limit": LIMIT,
                                                                   "next": deep})):
            timed(session, url, [params] * 3)  # warm up
            times, _out = timed(session, url, [params] * rounds)
            found[page] = {"p": percentiles(times), "n": len(times), "timed_out": False}
        for path_name, suffix in (("object", "/"), ("versions", "/versions/")):
            timed_each(session, [f"{url}{i}{suffix}" for i in sample[:3]])  # warm up
            times = timed_each(session, [f"{url}{i}{suffix}" for i in sample[3:]])
            found[path_name] = {"p": percentiles(times), "n": len(times)}
    _remove(path)
    found["objects"] = served
    return found


_PROBE: dict = {}


def _medallion_probe() -> tuple[int, float]:
    """One medallion first page at the probe size (seconds), for the quadratic estimate."""
    if not _PROBE:
        size = int(os.environ.get("BENCH_TAXII_MEDALLION_PROBE", "1000"))
        config = medallion_config("probe", *medallion_objects(size))
        with Server("medallion", config) as s:
            session = _session((MEDALLION_USER, MEDALLION_PASSWORD))
            url = f"{s.base}/{API_ROOT}/collections/{MEDALLION_COLLECTION}/objects/"
            times, _out = timed(session, url, [{"limit": LIMIT}])
        _remove(config, config.replace(".json", "-data.json"))
        _PROBE.update(size=size, seconds=times[0] / 1000)
    return _PROBE["size"], _PROBE["seconds"]


def _medallion_pages(size: int, rounds: int, budget: float) -> dict:
    config = medallion_config(f"pages-{size}", *medallion_objects(size))
    found = {}
    auth = (MEDALLION_USER, MEDALLION_PASSWORD)
    tokens_path = f"{config}.tokens"
    with Server("medallion", config, extra=tokens_path, tokens=rounds + 3) as server:
        tokens = json.loads(Path(tokens_path).read_text())
        session = _session(auth)
        url = f"{server.base}/{API_ROOT}/collections/{MEDALLION_COLLECTION}/objects/"
        timed(session, url, [{"limit": LIMIT, "next": t} for t in tokens[:3]])  # warm up
        times, out = timed(session, url, [{"limit": LIMIT, "next": t} for t in tokens[3:]],
                           budget=budget)
        found["deep"] = {"p": percentiles(times), "n": len(times), "timed_out": out}
        # The first page last: a request that outlasts the budget is abandoned with the server.
        times, out = timed(session, url, [{"limit": LIMIT}] * rounds, budget=budget)
        found["first"] = {"p": percentiles(times), "n": len(times), "timed_out": out}
    _remove(config, config.replace(".json", "-data.json"), tokens_path)
    if not found["first"]["n"]:
        probe_size, seconds = _medallion_probe()
        found["first"]["estimated_s"] = round(seconds * (size / probe_size) ** 2, 1)
        found["first"]["estimated_from"] = {"objects": probe_size, "seconds": round(seconds, 2)}
    return found


def bench_pages(sizes, rounds: int, budget: float) -> list[dict]:
    rows, by_id = [], {}
    for size in sizes:
        ours = by_id[size] = _ours_pages(size, rounds)
        theirs = _medallion_pages(size, rounds, budget)
        for page in ("first", "deep"):
            (o50, o95), (m50, m95) = ours[page]["p"], theirs[page]["p"]
            row = {"part": "page", "objects": size, "page": page, "limit": LIMIT,
                   "ours_p50_ms": round(o50, 2), "ours_p95_ms": round(o95, 2),
                   "ours_requests": ours[page]["n"],
                   "medallion_p50_ms": None if m50 is None else round(m50, 2),
                   "medallion_p95_ms": None if m95 is None else round(m95, 2),
                   "medallion_requests": theirs[page]["n"],
                   "medallion_budget_ran_out": theirs[page]["timed_out"],
                   "medallion_over_ours_p95": _ratio(m95, o95)}
            text = _fmt(m50, m95)
            if theirs[page]["timed_out"]:
                row["medallion_budget_s"] = budget
                if "estimated_s" in theirs[page]:
                    row["medallion_estimated_s"] = theirs[page]["estimated_s"]
                    row["medallion_estimated_from"] = theirs[page]["estimated_from"]
                    text = (f"> {budget:.0f} s (none finished; ~{theirs[page]['estimated_s']:,.0f}"
                            f" s est.)")
                    row["medallion_over_ours_p95"] = _ratio(
                        theirs[page]["estimated_s"] * 1000, o95)
                else:
                    text += f" ({theirs[page]['n']} in {budget:.0f} s)"
            ratio = row["medallion_over_ours_p95"]
            print(f"taxii  GET {page:5} page  {size:>7,} objects   ours {_fmt(o50, o95)}   "
                  f"medallion {text}   medallion/ours p95 = "
                  f"{'n/a' if ratio is None else f'{ratio:,.1f}x'} {GOAL_PAGE}", flush=True)
            rows.append(row)
    failed = []
    for path_name in ("object", "versions"):
        runs = [(size, by_id[size][path_name]) for size in sizes]
        for size, found in runs:
            p50, p95 = found["p"]
            print(f"taxii  GET objects/{{id}}/{'versions/' if path_name == 'versions' else ''}"
                  f"  {size:>7,} objects   ours {_fmt(p50, p95)}   ({found['n']} different ids)",
                  flush=True)
            rows.append({"part": "by-id", "path": path_name, "objects": size,
                         "ours_p50_ms": round(p50, 2), "ours_p95_ms": round(p95, 2),
                         "requests": found["n"]})
        if len(runs) > 1:
            (small, (s50, s95)), (large, (l50, l95)) = (
                (runs[0][0], runs[0][1]["p"]), (runs[-1][0], runs[-1][1]["p"]))
            growth = {"p50": _ratio(l50, s50), "p95": _ratio(l95, s95)}
            ok = all(g is not None and g <= GOAL_BY_ID for g in growth.values())
            rows.append({"part": "by-id-growth", "path": path_name, "from": small, "to": large,
                         "p50_ratio": growth["p50"], "p95_ratio": growth["p95"],
                         "goal_ratio": GOAL_BY_ID, "meets_goal": ok})
            print(f"taxii  GET {path_name} by id  {large:,} / {small:,} objects   p50 "
                  f"{growth['p50']:.2f}x  p95 {growth['p95']:.2f}x   (goal <= {GOAL_BY_ID}x)"
                  f"{'' if ok else '   FAILED'}", flush=True)
            if not ok:
                failed.append(path_name)
    if len(sizes) > 1:
        for page in ("first", "deep"):
            runs = [r for r in rows if r["part"] == "page" and r["page"] == page]
            small, large = runs[0], runs[-1]
            ours_growth = _ratio(large["ours_p95_ms"], small["ours_p95_ms"])
            theirs_growth = _ratio(large["medallion_p95_ms"], small["medallion_p95_ms"])
            rows.append({"part": "page-growth", "page": page, "from": small["objects"],
                         "to": large["objects"], "ours_p95_ratio": ours_growth,
                         "medallion_p95_ratio": theirs_growth})
            print(f"taxii  GET {page:5} page  p95 {large['objects']:,} / {small['objects']:,} "
                  f"objects   ours {ours_growth:.2f}x   medallion "
                  f"{'n/a (timed out)' if theirs_growth is None else f'{theirs_growth:.2f}x'}"
                  f"   (goal: ours nearly flat)", flush=True)
    if failed:
        rows.append({"part": "goals-failed", "paths": failed})
    return rows


def bench_taxii(sizes=(10_000, 100_000)) -> list[dict]:
    """Posting and page latency, ours next to medallion; rows for the results JSON."""
    count = int(os.environ.get("BENCH_TAXII_POST", "10000"))
    rounds = int(os.environ.get("BENCH_TAXII_ROUNDS", "200"))
    budget = float(os.environ.get("BENCH_TAXII_MEDALLION_BUDGET", "60"))
    return [bench_post(count)] + bench_pages(sorted(sizes), rounds, budget)


def _sizes() -> list[int]:
    return [int(s) for s in os.environ.get("BENCH_TAXII_SIZES", "10000,100000").split(",")]


def main():
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": os.uname().machine, "cpus": os.cpu_count(),
               "taxii": bench_taxii(_sizes())}
    out = ROOT / "bench" / "results" / f"taxii-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out.relative_to(ROOT)}")
    if _OWN_TMP:
        shutil.rmtree(_OWN_TMP, ignore_errors=True)
    failed = [p for r in results["taxii"] if r["part"] == "goals-failed" for p in r["paths"]]
    if failed:
        sys.exit(f"growth past {GOAL_BY_ID}x for: {', '.join(failed)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), *sys.argv[5:6])
    else:
        main()
