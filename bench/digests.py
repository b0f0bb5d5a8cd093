"""The digest benchmark (issue 4): digests sent per second by two real Celery worker processes
(concurrency 1 each, no beat) through a real Redis broker into an aiosmtpd sink on loopback,
next to the sink's own floor measured in the same run.

Per size (users, default 1,000 and 10,000): a fresh SQLite file, 20 alliances, organisations
of 10 users each active in 1-3 alliances, every user on a daily digest at HOUR:00 UTC, and
NOTES notes (default 5,000; mixed TLP, RED ones with named recipients, audiences among the
author's alliances) created inside the period that has just ended. Then schedule_due(now) runs
in this process (ledger rows and outbox rows), then relay_pending() publishes the outbox in a
loop until it is empty (publish=True would publish the first 500 only; the beat relays 500
every OUTBOX_RELAY_SECONDS, which would cap the rate at 50/s with the default 10 s).
The clock runs from the call to schedule_due until the sink has received the last mail and no
ledger row is pending.

  ours     digests/s = ledger rows "sent" / elapsed.
  floor    messages/s of plain smtplib sending the same number of one pre-rendered digest into
           the same sink, from as many processes as there are workers, one connection per
           message (as alliance.mail.services does).
  memory   peak RSS (VmHWM) of the worker processes, the prefork children included.
  scaling  wall time and worker CPU per digest at the largest size over the smallest (flat is
           the goal), and SQL statements + in-process time of one send_digest call.

    .venv/bin/python bench/digests.py            (sizes: BENCH_DIGEST_USERS, default 1000,10000)
    BENCH_DIGEST_USERS=200 BENCH_DIGEST_NOTES=500 .venv/bin/python bench/digests.py
Knobs: BENCH_DIGEST_NOTES (5000), BENCH_DIGEST_TIMEOUT (seconds, default 600 + users / 2),
BENCH_DIGEST_PROFILE=1 (print a cProfile of one send_digest call per size),
BENCH_DIGEST_KEEP=1 (keep the databases and worker logs)."""
import collections
import json
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["ALLIANCE_ENV"] = "testing"
# Figures, not a log of every request and SMTP line (LOG_LEVEL=INFO shows the access log).
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.pop("DATABASE_URL", None)

from tests.servers import CeleryWorker, RedisServer, SMTPSink  # noqa: E402

# The sink is not what is measured: aiosmtpd logs every SMTP line at INFO.
logging.getLogger("mail.log").setLevel(logging.WARNING)

ALLIANCES = 20
USERS_PER_ORG = 10
WORKERS = 2
HOUR = 6  # every user's daily digest, UTC
TLPS = (("CLEAR", 10), ("GREEN", 35), ("AMBER", 35), ("AMBER+STRICT", 15), ("RED", 5))
RED_RECIPIENTS = 3
WATCHERS_EVERY = 10  # every 10th user watches an observable value some note carries
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.MULTILINE | re.IGNORECASE)


# --- servers ----------------------------------------------------------------------------------

class CountingSink(SMTPSink):
    """The tests' aiosmtpd sink, but it only counts what it receives (bytes, Message-IDs, the
    time of the last one) instead of parsing and keeping 10,000 digests in this process."""

    def __init__(self):
        super().__init__()
        sink = self
        self.reset()

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                now = time.perf_counter()
                content = envelope.content
                with sink.lock:
                    sink.count += 1
                    sink.bytes += len(content)
                    sink.last_at = now
                    if sink.sample is None:
                        sink.sample = content
                    if sink.track_ids:
                        found = _MESSAGE_ID.search(content)
                        sink.message_ids[found.group(1) if found else None] += 1
                return "250 OK"

        self.handler = Handler()

    def reset(self, track_ids: bool = False) -> None:
        with self.lock:
            self.count, self.bytes, self.last_at, self.sample = 0, 0, None, None
            self.track_ids = track_ids
            self.message_ids = collections.Counter()

    def received(self) -> int:
        with self.lock:
            return self.count


class BenchWorker(CeleryWorker):
    """A real `celery worker` process as tests.servers starts it, but without the embedded
    beat (this process schedules and relays) and with a node name of its own."""

    def __init__(self, env: dict, logfile: str, name: str):
        super().__init__(env, logfile)
        self.name = name

    def start(self) -> "BenchWorker":
        self.errfile = open(self.logfile + ".err", "wb")  # closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
             "--concurrency=1", "--pool=prefork", "--loglevel=INFO", "--without-mingle",
             "--without-gossip", "-n", f"{self.name}@%h", f"--logfile={self.logfile}"],
            cwd=str(ROOT), env=self.env, stdout=subprocess.DEVNULL, stderr=self.errfile,
            start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while "ready." not in self.log():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}\n"
                                   f"{Path(self.logfile + '.err').read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            errfile = getattr(self, "errfile", None)
            if errfile is not None and not errfile.closed:
                errfile.close()


# --- /proc: memory and CPU of a worker and its prefork children -------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except OSError:
        return 0.0


class WorkerMeter:
    """Peak RSS per worker process (main and children, sampled: a child that is replaced takes
    its high-water mark with it) and CPU seconds of the live worker processes."""

    def __init__(self, workers):
        self.workers = workers
        self.peak: dict[int, float] = {}
        self.role: dict[int, str] = {}

    def sample(self) -> None:
        for worker in self.workers:
            for pid in _tree(worker.proc.pid):
                kind = "main" if pid == worker.proc.pid else "child"
                self.role.setdefault(pid, f"{worker.name}:{kind}")
                self.peak[pid] = max(self.peak.get(pid, 0.0), _hwm_mb(pid))

    def cpu(self) -> float:
        return sum(_cpu_s(pid) for worker in self.workers for pid in _tree(worker.proc.pid))

    def report(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, mb in self.peak.items():
            out[self.role[pid]] = round(max(out.get(self.role[pid], 0.0), mb), 1)
        return out


# --- the app and the data ---------------------------------------------------------------------

def make_app(db_path: str, redis_url: str, mail_url: str, instance: str):
    from flask_migrate import upgrade
    from sqlalchemy import text

    from alliance import create_app
    from alliance.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}", "REDIS_URL": redis_url,
                      "MAIL_URL": mail_url, "INSTANCE_PATH": instance,
                      "RATELIMIT_STORAGE_URI": "memory://"})
    with app.app_context():
        upgrade()
        # WAL, as a web process, a beat and workers sharing one SQLite file need (persistent in
        # the file, so the workers get it too).
        with db.engine.connect() as conn:
            conn.execute(text("PRAGMA journal_mode=WAL"))
    return app


def _description(rng: random.Random, i: int) -> str:
    words = ("phishing", "credential", "harvesting", "campaign", "targets", "ministries",
             "invoices", "lure", "domains", "registered", "recently", "infrastructure",
             "overlaps", "previous", "activity", "sector", "observed", "payload", "loader")
    return (f"Report {i}. " + " ".join(rng.choice(words) for _ in range(60)) + ".")


def fill(app, n_users: int, n_notes: int, start: datetime, end: datetime, seed: int = 4) -> dict:
    """Everything by Core inserts with explicit ids (a fresh database)."""
    from alliance.alliances.models import Alliance, Membership
    from alliance.auth.models import User
    from alliance.digests.models import DigestPreference, WatchTerm
    from alliance.extensions import db
    from alliance.notes.models import Note, NoteAudience, NoteRecipient, Observable
    from alliance.orgs.models import Organisation

    rng = random.Random(seed)
    now = datetime.now(UTC)
    n_orgs = -(-n_users // USERS_PER_ORG)
    levels, weights = zip(*TLPS, strict=True)
    with app.app_context():
        conn = db.session.connection()

        def insert(model, rows, batch=5000):
            for i in range(0, len(rows), batch):
                conn.execute(model.__table__.insert(), rows[i:i + batch])

        insert(Alliance, [{
            "id": a, "name": f"Bench Alliance {a:02d}", "slug": f"bench-{a:02d}",
            "description": "Shares threat notes.", "charter": "Be kind.", "policy_tags": [],
            "join_policy": "approval", "allowed_tlps": list(levels), "default_tlp": "AMBER",
            "publish_clear_allowed": False, "digest_frequency": "daily", "digest_hour": HOUR,
            "created_at": now} for a in range(1, ALLIANCES + 1)])
        org_rows, member_rows = [], []
        alliances_of: dict[int, list[int]] = {}
        orgs_in: dict[int, list[int]] = collections.defaultdict(list)
        for o in range(1, n_orgs + 1):
            stix_id = f"identity--{uuid.uuid4()}"
            org_rows.append({"id": o, "name": f"Bench Org {o:05d}", "slug": f"bench-org-{o:05d}",
                             "country": ("DE", "FR", "NL", "PL", "EE")[o % 5],
                             "sectors": ["government"], "status": "approved", "stix_id": stix_id,
                             "stix_identity": {"type": "identity", "spec_version": "2.1",
                                               "id": stix_id, "name": f"Bench Org {o:05d}",
                                               "identity_class": "organization"},
                             "vetted_at": now, "created_at": now})
            alliances_of[o] = sorted(rng.sample(range(1, ALLIANCES + 1), rng.randint(1, 3)))
            for a in alliances_of[o]:
                orgs_in[a].append(o)
                member_rows.append({"alliance_id": a, "organisation_id": o, "state": "active",
                                    "charter_accepted_at": now, "created_at": now,
                                    "updated_at": now})
        insert(Organisation, org_rows)
        insert(Membership, member_rows)

        def org_of(user_id: int) -> int:
            return (user_id - 1) // USERS_PER_ORG + 1

        insert(User, [{
            "id": u, "email": f"user{u:05d}@org{org_of(u):05d}.bench.example",
            "name": f"Bench User {u}", "password_hash": "!bench-no-sign-in",
            "organisation_id": org_of(u),
            "role": "org_admin" if u % USERS_PER_ORG == 1 else "member", "is_admin": False,
            "session_version": 1, "email_verified_at": now, "created_at": now}
            for u in range(1, n_users + 1)])
        insert(DigestPreference, [{
            "user_id": u, "frequency": "daily", "weekday": 0, "hour": HOUR, "timezone": "UTC",
            "alliance_ids": None, "alerts": True, "updated_at": now}
            for u in range(1, n_users + 1)])

        notes, audiences, recipients, observables = [], [], [], []
        span = end - start
        for j in range(1, n_notes + 1):
            author = rng.randint(1, n_users)
            org = org_of(author)
            tlp = rng.choices(levels, weights)[0]
            mine = alliances_of[org]
            audience = sorted(rng.sample(mine, min(len(mine), rng.choice((1, 1, 2)))))
            at = start + span * ((j - 0.5) / n_notes)
            notes.append({"id": j, "report_id": f"report--{uuid.uuid4()}", "organisation_id": org,
                          "author_id": author, "kind": ("incident", "indicators", "analysis")[j % 3],
                          "title": f"Incident {j}: phishing wave against sector {j % 17}",
                          "description": _description(rng, j), "tlp": tlp, "policy_tags": [],
                          "sectors": [], "countries": [], "labels": [], "types": ["report"],
                          "publish_public": False, "version": 1, "created_at": at,
                          "updated_at": at})
            audiences.extend({"note_id": j, "alliance_id": a} for a in audience)
            if tlp == "RED":
                named = set()
                while len(named) < RED_RECIPIENTS:
                    member_org = rng.choice(orgs_in[audience[0]])
                    first = (member_org - 1) * USERS_PER_ORG + 1
                    candidate = rng.randint(first, min(n_users, first + USERS_PER_ORG - 1))
                    if candidate != author:
                        named.add(candidate)
                recipients.extend({"note_id": j, "user_id": u} for u in sorted(named))
            observables.append({"note_id": j, "kind": "ipv4",
                                "value": f"198.51.{j // 250 % 250}.{j % 250}"})
        insert(Note, notes, batch=1000)
        insert(NoteAudience, audiences)
        insert(NoteRecipient, recipients)
        insert(Observable, observables)
        insert(WatchTerm, [{
            "user_id": u, "kind": "value", "created_at": now,
            "value": observables[rng.randrange(n_notes)]["value"]}
            for u in range(1, n_users + 1, WATCHERS_EVERY)])
        db.session.commit()
    return {"orgs": n_orgs, "memberships": len(member_rows), "red_notes": len(
        {r["note_id"] for r in recipients})}


# --- the floor --------------------------------------------------------------------------------

# One connection per message, as alliance.mail.services._send_smtp does (EHLO via has_extn).
_SENDER = r"""
import smtplib, sys
port, path, count, sender, rcpt = sys.argv[1:6]
port, count = int(port), int(count)
with open(path, "rb") as f:
    data = f.read()
print("ready", flush=True)
sys.stdin.readline()
for _ in range(count):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.has_extn("starttls")
        client.sendmail(sender, [rcpt], data)
"""


def render_one(app, user_id: int, start: datetime, end: datetime) -> tuple[bytes, str, str]:
    """One digest as the worker builds it, flattened as smtplib.send_message flattens it."""
    import io
    from email.generator import BytesGenerator

    from alliance.auth.models import User
    from alliance.digests.building import build_digest
    from alliance.digests.preferences import preferences_of
    from alliance.digests.rendering import list_headers, render_digest
    from alliance.extensions import db
    from alliance.mail.services import build_message, deterministic_message_id

    with app.app_context():
        user = db.session.get(User, user_id)
        digest = build_digest(user, start, end, preferences_of(user).alliance_ids)
        subject, text, html = render_digest(digest, end.date())
        msg = build_message(user.email, subject, text, html,
                            deterministic_message_id(f"floor-{user.id}"),
                            headers=list_headers(user))
        buf = io.BytesIO()
        BytesGenerator(buf).flatten(msg, linesep="\r\n")
        return buf.getvalue(), app.config["MAIL_FROM"], user.email


def floor_rate(app, sink: CountingSink, count: int, user_id: int, start, end, workdir: str,
               timeout: float) -> tuple[float, float]:
    """messages/s of plain smtplib into the same sink: WORKERS sender processes, `count`
    messages in all. Returns (rate, mean message KB)."""
    data, sender, rcpt = render_one(app, user_id, start, end)
    path = os.path.join(workdir, "floor.eml")
    Path(path).write_bytes(data)
    shares = [count // WORKERS + (1 if i < count % WORKERS else 0) for i in range(WORKERS)]
    sink.reset()
    procs = []
    try:
        for share in shares:
            procs.append(subprocess.Popen(  # noqa: S603 (our own interpreter, fixed code)
                [sys.executable, "-c", _SENDER, str(sink.port), path, str(share), sender, rcpt],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a floor sender did not start")
        t0 = time.perf_counter()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while sink.received() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"floor: {sink.received()} of {count} after {timeout:.0f}s")
            if any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError("a floor sender failed")
            time.sleep(0.05)
        for proc in procs:
            proc.wait(30)
        return count / (sink.last_at - t0), sink.bytes / count / 1024
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


# --- one send_digest in this process: SQL statements, time, optional cProfile -----------------

def _shape(sql: str) -> str:
    """A statement without its column list and with IN lists folded, to group repeats."""
    sql = re.sub(r"\(\?(, \?)*\)", "(?...)", sql)
    return re.sub(r"^SELECT .*? FROM ", "SELECT ... FROM ", sql)[:160]


def one_digest(app, user_ids, start, end, profile: bool = False) -> dict:
    """send_digest for fresh ledger rows of a few users (the first warms the templates):
    median ms, SQL statements and SQL ms of one call; a cProfile of the last when asked."""
    import cProfile
    import pstats
    from types import SimpleNamespace

    from sqlalchemy import event

    from alliance.digests.delivery import send_digest
    from alliance.digests.models import Delivery
    from alliance.extensions import db

    stats = {"statements": 0, "sql_s": 0.0}
    slow: list[tuple[float, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_t", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        took = time.perf_counter() - conn.info["bench_t"].pop()
        stats["statements"] += 1
        stats["sql_s"] += took
        slow.append((took, " ".join(statement.split())))

    times, per_call = [], []
    for k, user_id in enumerate(user_ids):
        with app.app_context():
            row = Delivery(user_id=user_id, kind="digest", period_key=f"bench-profile-{k}",
                           window_start=start, window_end=end)
            db.session.add(row)
            db.session.commit()
            message = SimpleNamespace(payload={"delivery_id": row.id})
        last = k == len(user_ids) - 1
        stats.update(statements=0, sql_s=0.0)
        slow.clear()
        # A fresh app context and session per call, as the worker's task has.
        with app.app_context():
            engine = db.engine
            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            profiler = cProfile.Profile() if (profile and last) else None
            try:
                t0 = time.perf_counter()
                if profiler:
                    profiler.enable()
                send_digest(message)
                if profiler:
                    profiler.disable()
                took = time.perf_counter() - t0
            finally:
                event.remove(engine, "before_cursor_execute", before)
                event.remove(engine, "after_cursor_execute", after)
        with app.app_context():
            state = db.session.get(Delivery, message.payload["delivery_id"]).state
            if k:  # the first call compiles the templates
                times.append(took)
                per_call.append((stats["statements"], stats["sql_s"]))
            if profiler:
                print(f"--- cProfile of one send_digest (user {user_id}, ledger {state}) ---")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
                print("--- slowest SQL statements of that call ---")
                for took_s, sql in sorted(slow, reverse=True)[:8]:
                    print(f"{took_s * 1000:8.2f} ms  {sql[:200]}")
                print("--- most repeated SQL statements of that call ---")
                shapes: dict[str, list[float]] = collections.defaultdict(list)
                for took_s, sql in slow:
                    shapes[_shape(sql)].append(took_s)
                for shape, took in sorted(shapes.items(), key=lambda kv: -len(kv[1]))[:6]:
                    print(f"{len(took):5} x {sum(took) * 1000:7.2f} ms  {shape}")
    return {"in_process_ms": round(statistics.median(times) * 1000, 1),
            "statements_per_digest": round(statistics.median(s for s, _ in per_call)),
            "sql_ms_per_digest": round(statistics.median(t for _, t in per_call) * 1000, 1)}


# --- one size ---------------------------------------------------------------------------------

def _ledger(db_path: str) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return dict(conn.execute("SELECT state, count(*) FROM deliveries WHERE kind = 'digest' "
                                 "GROUP BY state").fetchall())
    finally:
        conn.close()


def _outbox_errors(db_path: str) -> tuple[int, int, list[str]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        failed = conn.execute("SELECT count(*) FROM outbox_messages WHERE failed_at IS NOT NULL"
                              ).fetchone()[0]
        retried = conn.execute("SELECT count(*) FROM outbox_messages WHERE run_attempts > 1"
                               ).fetchone()[0]
        errors = [r[0] for r in conn.execute(
            "SELECT DISTINCT substr(last_error, 1, 200) FROM outbox_messages "
            "WHERE last_error IS NOT NULL LIMIT 5")]
        return failed, retried, errors
    finally:
        conn.close()


def bench_one(n_users: int, n_notes: int, workdir: str, timeout: float, profile: bool) -> dict:
    from alliance.digests import schedule
    from alliance.digests.scheduling import schedule_due
    from alliance.extensions import db
    from alliance.outbox.services import relay_pending

    here = os.path.join(workdir, f"users-{n_users}")
    os.makedirs(here)
    db_path = os.path.join(here, "bench.db")
    now = datetime.now(UTC)
    period = schedule.current_period(now, "daily", HOUR, "UTC")
    redis, sink, workers, app = RedisServer(here), CountingSink(), [], None
    try:
        redis.start()
        sink.start()
        app = make_app(db_path, redis.url, sink.url, os.path.join(here, "instance"))
        t = time.perf_counter()
        shape = fill(app, n_users, n_notes, period.start, period.end)
        fill_s = time.perf_counter() - t
        print(f"digests {n_users:>7,} users  filled {n_notes:,} notes, {shape['orgs']:,} "
              f"organisations in {fill_s:.1f} s; starting {WORKERS} workers", flush=True)
        env = {"ALLIANCE_ENV": "testing", "TEST_DATABASE_URL": f"sqlite:///{db_path}",
               "REDIS_URL": redis.url, "MAIL_URL": sink.url,
               "BASE_URL": app.config["BASE_URL"], "INSTANCE_PATH": os.path.join(here, "worker")}
        workers = [BenchWorker(env, os.path.join(here, f"worker{i}.log"), f"bench{i}").start()
                   for i in range(WORKERS)]
        for worker in workers:
            worker.wait_ready()
        meter = WorkerMeter(workers)
        meter.sample()
        cpu0 = meter.cpu()
        sink.reset(track_ids=True)

        t0 = time.perf_counter()
        with app.app_context():
            # publish=True would call relay_pending() once: 500 messages. The beat relays the
            # rest (500 every OUTBOX_RELAY_SECONDS); here they are relayed at once, in a loop.
            scheduled = len(schedule_due(now, publish=False))
            t_scheduled = time.perf_counter()
            while relay_pending():
                pass
            t_published = time.perf_counter()
            db.session.remove()
        deadline, next_note, polls = time.monotonic() + timeout, time.monotonic() + 15, 0
        while True:
            polls += 1
            if polls % 5 == 0:
                meter.sample()
            states = _ledger(db_path)
            if not states.get("pending") and sink.received() >= states.get("sent", 0):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done after {timeout:.0f}s: ledger {states}, "
                                   f"sink {sink.received()}")
            for worker in workers:
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"worker {worker.name} exited:\n{worker.log()[-3000:]}")
            if time.monotonic() > next_note:
                next_note += 15
                print(f"digests {n_users:>7,} users  ... {sink.received():,} of {scheduled:,} "
                      f"mailed after {time.perf_counter() - t0:.0f} s", flush=True)
            time.sleep(0.2)
        sent = states.get("sent", 0)
        elapsed = (sink.last_at if sink.last_at else time.perf_counter()) - t0
        meter.sample()
        cpu = meter.cpu() - cpu0
        peaks = meter.report()
        received, mail_kb = sink.received(), sink.bytes / max(1, sink.received()) / 1024
        duplicates = sum(c - 1 for c in sink.message_ids.values() if c > 1)
        failed, retried, errors = _outbox_errors(db_path)
        for worker in workers:
            worker.stop()

        floor, floor_kb = floor_rate(app, sink, max(sent, 1), 1, period.start, period.end,
                                     here, timeout)
        spread = [2, max(3, n_users // 4), max(4, n_users // 2), max(5, 3 * n_users // 4)]
        detail = one_digest(app, spread, period.start, period.end, profile)
    finally:
        for stop in [w.stop for w in workers] + [sink.stop, redis.stop]:
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"(stopping: {exc})", file=sys.stderr)
        if app is not None:
            with app.app_context():
                db.engine.dispose()

    rate = sent / elapsed
    peak = max(peaks.values(), default=0.0)
    row = {"users": n_users, "notes": n_notes, "alliances": ALLIANCES, **shape,
           "workers": WORKERS, "scheduled": scheduled, "ledger": states, "sent": sent,
           "sink_received": received, "duplicate_message_ids": duplicates,
           "outbox_failed": failed, "outbox_retried": retried, "outbox_errors": errors,
           "schedule_s": round(t_scheduled - t0, 2), "publish_s": round(t_published - t0, 2),
           "elapsed_s": round(elapsed, 2), "digests_per_s": round(rate, 1),
           "after_schedule_per_s": round(sent / (elapsed - (t_scheduled - t0)), 1),
           "floor_per_s": round(floor, 1), "ours_over_floor": round(rate / floor, 3),
           "wall_ms_per_digest": round(elapsed / max(sent, 1) * 1000, 2),
           "worker_cpu_ms_per_digest": round(cpu / max(sent, 1) * 1000, 2),
           "peak_worker_rss_mb": round(peak, 1), "worker_rss_mb": peaks,
           "mail_kb": round(mail_kb, 1), "floor_mail_kb": round(floor_kb, 1),
           "fill_s": round(fill_s, 1), **detail}
    print(f"digests {n_users:>7,} users  sent {sent:>6,} in {elapsed:7.1f} s = {rate:7.1f}/s"
          f"   floor {floor:7.1f}/s   ours/floor = {rate / floor:5.2f} (goal >= 0.5)"
          f"   peak worker RSS {peak:4.0f} MB (goal < 300)")
    print(f"        {'':>7}        scheduled {scheduled:,} in {t_scheduled - t0:.1f} s, "
          f"published by {t_published - t0:.1f} s, {row['after_schedule_per_s']:.1f}/s after "
          f"scheduling; ledger {states}; worker CPU "
          f"{row['worker_cpu_ms_per_digest']:.1f} ms/digest; one send_digest in-process "
          f"{detail['in_process_ms']:.1f} ms, {detail['statements_per_digest']} SQL statements "
          f"({detail['sql_ms_per_digest']:.1f} ms); mail {mail_kb:.0f} KB (floor's "
          f"{floor_kb:.0f} KB)", flush=True)
    if received != sent or duplicates or failed:
        print(f"        WARNING: sink got {received}, ledger says {sent} sent, "
              f"{duplicates} duplicate Message-IDs, {failed} outbox failures {errors}")
    return row


def bench_digests(user_counts=(1000, 10000), notes: int | None = None) -> list[dict]:
    notes = notes or int(os.environ.get("BENCH_DIGEST_NOTES", "5000"))
    profile = os.environ.get("BENCH_DIGEST_PROFILE", "0") not in ("", "0")
    keep = os.environ.get("BENCH_DIGEST_KEEP", "0") not in ("", "0")
    workdir = tempfile.mkdtemp(prefix="alliance-bench-digests-")
    rows = []
    try:
        for n in user_counts:
            timeout = float(os.environ.get("BENCH_DIGEST_TIMEOUT", 600 + n / 2))
            rows.append(bench_one(n, notes, workdir, timeout, profile))
    finally:
        if keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(rows) > 1:
        small, big = rows[0], rows[-1]
        print(f"digests per digest {big['users']:,} / {small['users']:,} users: wall "
              f"{big['wall_ms_per_digest'] / small['wall_ms_per_digest']:.2f}x, worker CPU "
              f"{big['worker_cpu_ms_per_digest'] / small['worker_cpu_ms_per_digest']:.2f}x, "
              f"one send_digest {big['in_process_ms'] / small['in_process_ms']:.2f}x "
              f"(goal: flat)")
    return rows


def main() -> None:
    counts = [int(s) for s in os.environ.get("BENCH_DIGEST_USERS", "1000,10000").split(",")]
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": os.uname().machine, "cpus": os.cpu_count(),
               "digests": bench_digests(counts)}
    out = ROOT / "bench" / "results" / f"digests-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    main()
