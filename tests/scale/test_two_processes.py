"""The scale check (issue 6): the platform as production runs it, on one machine — PostgreSQL
and redis-server on loopback, TWO gunicorn processes (each started from alliance-web.service's
ExecStart with deploy/gunicorn.conf.py, two workers each, different ports), TWO Celery workers
(alliance-worker@.service, instances a and b) and exactly ONE beat (alliance-beat.service),
and an SMTP sink. Nothing may depend on which process answers:

- a user signed in through process A is signed in on B with the same cookie, and signing out
  on B ends the session on A;
- the per-account sign-in limit counts failures sent alternately to A and B;
- a bounded mixed load (SCALE_SECONDS, default 75) of feed pages, searches, note pages, web
  and TAXII posts and TAXII pages over both processes, with two digest cycles forced at once
  (`flask --app wsgi alliance digests run --now ...`, as two schedulers would) while beat
  relays the same digests to the workers, ends with no 5xx (nor any other unexpected answer),
  every post that was answered with success stored exactly once, and every digest and alert
  Message-ID received exactly once by the SMTP sink.

The web processes run ALLIANCE_ENV=development with an explicit shared SECRET_KEY: production
differs only in Secure cookies and HSTS, which need the TLS proxy that
tests/deploy/test_deploy_files.py puts in front. Run it with `make scale` (CI: .ci/run)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import orjson
import pytest
import requests
from sqlalchemy import func, select

from tests.deploy.units import UnitProcess
from tests.servers import ROOT, PostgresServer, RedisServer, SMTPSink, free_port

pytestmark = pytest.mark.scale

SCALE_SECONDS = float(os.environ.get("SCALE_SECONDS", "75"))
TAXII = "application/taxii+json;version=2.1"
SECRET_KEY = "scale-check-shared-secret-" + uuid.uuid4().hex
ACCOUNT_LIMIT = 5  # SIGNIN_LIMIT_ACCOUNT below: failed sign-ins per account
WATCHED = "shared.scale.example"
WEB_THREADS = 3
TAXII_THREADS = 2
REQUEST_TIMEOUT = 90  # seconds; a slow answer is recorded as an error, never retried


# --- the platform ---------------------------------------------------------------------------

def _env(pg, redis, smtp, workdir: str, name: str) -> dict:
    """One host's /etc/alliance/alliance.env: shared database, Redis, secret; its own files."""
    return {
        "ALLIANCE_ENV": "development", "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": pg.url, "REDIS_URL": redis.url, "MAIL_URL": smtp.url,
        "BASE_URL": "http://alliance.scale", "INSTANCE_PATH": os.path.join(workdir, name),
        "PROMETHEUS_MULTIPROC_DIR": os.path.join(workdir, name, "prometheus"),
        "SIGNIN_LIMIT_ACCOUNT": f"{ACCOUNT_LIMIT} per 15 minutes",
        "SIGNIN_LIMIT_IP": "60 per 15 minutes",
        "TAXII_RATE_LIMIT": "100000 per minute",
        "OUTBOX_RELAY_SECONDS": "1", "OUTBOX_PUBLISH_TIMEOUT": "2",
        "DIGEST_SCAN_SECONDS": "3600",  # the test forces the digest cycles itself
        "LOG_LEVEL": "WARNING",
    }


def _flask(env: dict, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([os.path.join(ROOT, ".venv", "bin", "flask"), "--app", "wsgi", *args],
                            cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": ROOT},
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _populate(app) -> dict:
    """Three organisations in one alliance; web users with a daily digest whose period holds
    now (two of them watch a value the load posts), TAXII users with API keys."""
    from alliance.apikeys.services import create_key
    from alliance.digests.preferences import save_preferences
    from alliance.digests.watch_terms import add_watch_term
    from alliance.extensions import db
    from tests import factories
    from tests.digests.helpers import ZONE, far_hour, next_run

    with app.app_context():
        orgs = [factories.make_org(f"Scale Org {n}") for n in range(3)]
        founder = factories.make_user(orgs[0], "founder@scale0.example", role="org_admin")
        alliance = factories.make_alliance(founder, slug="scale", name="Scale Alliance")
        for org in orgs[1:]:
            factories.add_member(alliance, org, "active")
        hour = far_hour()
        web_users, taxii_keys = [], []
        for n in range(WEB_THREADS + 2):
            user = factories.make_user(orgs[n % 3], f"analyst{n}@scale{n % 3}.example")
            save_preferences(user, frequency="daily", hour=hour, timezone=ZONE)
            if n < 2:
                add_watch_term(user, "value", WATCHED)
            web_users.append(user.email)
        for n in range(TAXII_THREADS):
            user = factories.make_user(orgs[n % 3], f"machine{n}@scale{n % 3}.example")
            taxii_keys.append(create_key(user, f"SIEM {n}")[1])
        victim = factories.make_user(orgs[2], "victim@scale2.example").email
        db.session.commit()
        instant, _ = next_run(hour)
        return {"alliance_id": alliance.id, "web_users": web_users, "taxii_keys": taxii_keys,
                "victim": victim, "digest_instant": instant}


@pytest.fixture(scope="module")
def platform():
    from alliance import create_app

    workdir = tempfile.mkdtemp(prefix="alliance-scale-")
    pg_dir = tempfile.mkdtemp(prefix="alliance-scale-pg-")  # owned by postgres when root
    started, procs = time.monotonic(), []
    pg = PostgresServer(pg_dir).start()
    redis = RedisServer(workdir).start()
    smtp = SMTPSink().start()
    try:
        env = _env(pg, redis, smtp, workdir, "cli")
        _flask(env, "db", "upgrade")
        app = create_app({"SQLALCHEMY_DATABASE_URI": pg.url, "REDIS_URL": redis.url,
                          "MAIL_URL": smtp.url, "RATELIMIT_STORAGE_URI": "memory://"})
        data = _populate(app)
        ports = {"A": free_port(), "B": free_port()}
        webs = {name: UnitProcess(
            "alliance-web.service", state_dir=os.path.join(workdir, f"web-{name}"),
            logfile=os.path.join(workdir, f"web-{name}.log"),
            env={**_env(pg, redis, smtp, workdir, f"web-{name}"),
                 "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2"})
            for name, port in ports.items()}
        workers = [UnitProcess(
            "alliance-worker@.service", instance=name,
            state_dir=os.path.join(workdir, f"worker-{name}"),
            logfile=os.path.join(workdir, f"worker-{name}.log"),
            env={**_env(pg, redis, smtp, workdir, f"worker-{name}"), "CELERY_CONCURRENCY": "1"})
            for name in ("a", "b")]
        beat = UnitProcess("alliance-beat.service", state_dir=os.path.join(workdir, "beat"),
                           logfile=os.path.join(workdir, "beat.log"),
                           env=_env(pg, redis, smtp, workdir, "beat"))
        os.makedirs(os.path.join(workdir, "beat"), exist_ok=True)
        procs = [*webs.values(), *workers, beat]
        for proc in procs:
            proc.start()
        for name, port in ports.items():
            webs[name].wait_for_port(port)
        for worker in workers:
            worker.wait_for_log(" ready.")
        beat.wait_for_log("beat: Starting")
        print(f"\nscale: platform up in {time.monotonic() - started:.1f} s")
        yield {"app": app, "env": env, "smtp": smtp, "webs": webs, "workers": workers,
               "beat": beat, "url": {n: f"http://127.0.0.1:{p}" for n, p in ports.items()},
               **data}
    finally:
        for proc in procs:
            proc.stop()
        smtp.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback: no proxy from the environment
    return session


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _sign_in(session, base: str, email: str, password: str, form_from: str | None = None):
    """Sign in on `base`, with the form (and its CSRF token) fetched from `form_from`."""
    page = session.get((form_from or base) + "/auth/sign-in", timeout=REQUEST_TIMEOUT)
    return session.post(base + "/auth/sign-in", allow_redirects=False, timeout=REQUEST_TIMEOUT,
                        data={"csrf_token": _csrf(page.text), "email": email,
                              "password": password})


def _password() -> str:
    from tests import factories

    return factories.PASSWORD


# --- one cookie, two processes ----------------------------------------------------------------

def test_a_session_signed_in_on_process_a_is_signed_in_on_process_b(platform):
    a, b = platform["url"]["A"], platform["url"]["B"]
    session = _session()
    assert session.get(b + "/notes/", allow_redirects=False).status_code == 302  # not yet
    # The form (and its CSRF token) comes from B, the sign-in goes to A.
    r = _sign_in(session, a, platform["web_users"][-1], _password(), form_from=b)
    assert r.status_code == 302, r.text[:300]
    feed = session.get(b + "/notes/", allow_redirects=False)
    assert feed.status_code == 200 and "analyst" in feed.text.lower()
    assert session.get(a + "/notes/", allow_redirects=False).status_code == 200
    # Signing out on B ends the session on A too (a per-user session version in the database).
    token = _csrf(session.get(b + "/notes/").text)
    stolen = dict(session.cookies)
    assert session.post(b + "/auth/sign-out", data={"csrf_token": token},
                        allow_redirects=False).status_code == 302
    replay = _session()
    replay.cookies.update(stolen)
    assert replay.get(a + "/notes/", allow_redirects=False).status_code == 302


def test_the_sign_in_limit_counts_failures_on_both_processes(platform):
    from alliance.audit.models import AuditEvent
    from alliance.extensions import db

    urls = [platform["url"]["A"], platform["url"]["B"]]
    session = _session()
    victim = platform["victim"]
    statuses = [_sign_in(session, urls[n % 2], victim, f"wrong-guess-{n}").status_code
                for n in range(ACCOUNT_LIMIT + 1)]
    assert statuses == [401] * ACCOUNT_LIMIT + [429]
    # Locked on both, even with the right password.
    assert _sign_in(session, urls[0], victim, _password()).status_code == 429
    assert _sign_in(session, urls[1], victim, _password()).status_code == 429
    with platform["app"].app_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "signin.lockout", AuditEvent.target_label == victim)).all()
        assert len(events) == 1  # one lockout burst, audited once across processes


# --- bounded mixed load -------------------------------------------------------------------------

class Recorder:
    """Every answer of the load: (kind, status, seconds); exceptions as status 0."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = []
        self.errors = []
        self.web_posts = {}      # title -> uuid
        self.taxii_posts = []    # indicator ids

    def call(self, kind: str, send, url: str, expected=(200,), **kwargs):
        """send(url, **kwargs) (a session's get or post), timed and recorded."""
        started = time.monotonic()
        try:
            response = send(url, timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.rows.append((kind, 0, time.monotonic() - started))
                self.errors.append(f"{kind}: {exc!r}")
            return None
        with self.lock:
            self.rows.append((kind, response.status_code, time.monotonic() - started))
            if response.status_code not in expected:
                self.errors.append(f"{kind}: {response.status_code} {response.url} "
                                   f"{response.text[:200]!r}")
        return response

    def summary(self) -> str:
        by_kind = defaultdict(list)
        for kind, _status, seconds in self.rows:
            by_kind[kind].append(seconds)
        lines = []
        for kind, times in sorted(by_kind.items()):
            times.sort()
            lines.append(f"  {kind:<14} n={len(times):<5} p50={times[len(times) // 2] * 1000:6.0f}"
                         f" ms  p95={times[int(len(times) * 0.95)] * 1000:6.0f} ms")
        return "\n".join(lines)


def _web_user(platform, rec: Recorder, n: int, deadline: float) -> None:
    urls = [platform["url"]["A"], platform["url"]["B"]]
    session = _session()
    r = _sign_in(session, urls[n % 2], platform["web_users"][n], _password(),
                 form_from=urls[(n + 1) % 2])
    assert r.status_code == 302, r.text[:300]
    mine, i = [], 0
    while time.monotonic() < deadline:
        base, other = urls[i % 2], urls[(i + 1) % 2]
        rec.call("feed", session.get, base + "/notes/")
        rec.call("search", session.get, base + "/notes/",
                 params={"q": "beacon" if i % 2 else WATCHED})
        if mine:
            rec.call("note page", session.get, f"{other}/notes/{mine[i % len(mine)]}")
        if i % 3 == 0:  # the form from one process, the post to the other
            page = rec.call("compose form", session.get, other + "/notes/new/incident")
            if page is not None and page.status_code == 200:
                title = f"Scale beacon {n}-{i} {uuid.uuid4().hex[:8]}"
                data = {"csrf_token": _csrf(page.text), "title": title, "tlp": "GREEN",
                        "alliances": str(platform["alliance_id"]),
                        "description": "Beaconing seen during the scale check.",
                        "observables": f"{WATCHED}\nc2-{uuid.uuid4().hex[:10]}.scale.example"}
                r = rec.call("web post", session.post, base + "/notes/new/incident", data=data,
                             allow_redirects=False, expected=(302,))
                if r is not None and r.status_code == 302:
                    note_uuid = r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
                    with rec.lock:
                        rec.web_posts[title] = note_uuid
                    mine.append(note_uuid)
        i += 1


def _taxii_client(platform, rec: Recorder, n: int, deadline: float) -> None:
    from tests.notes.helpers import indicator

    urls = [platform["url"]["A"], platform["url"]["B"]]
    session = _session()
    session.headers.update({"Authorization": f"Bearer {platform['taxii_keys'][n]}",
                            "Accept": TAXII})
    r = rec.call("taxii", session.get, urls[n % 2] + "/taxii2/api/collections/")
    collection = next(c["id"] for c in r.json()["collections"] if c["can_write"])
    path = f"/taxii2/api/collections/{collection}/objects/"
    i = 0
    while time.monotonic() < deadline:
        base, other = urls[i % 2], urls[(i + 1) % 2]
        page = rec.call("taxii page", session.get, base + path, params={"limit": 20})
        cursor = page.json().get("next") if page is not None and page.status_code == 200 \
            else None
        if cursor:  # the next page from the other process: the cursor is signed, not kept
            rec.call("taxii page", session.get, other + path,
                     params={"limit": 20, "next": cursor})
        if i % 2 == 0:
            obj = indicator(f"[domain-name:value = 'taxii-{uuid.uuid4().hex[:10]}.scale.example']",
                            name="Scale beacon over TAXII")
            r = rec.call("taxii post", session.post, other + path,
                         data=orjson.dumps({"objects": [obj]}),
                         headers={"Content-Type": TAXII}, expected=(202,))
            if r is not None and r.status_code == 202 and r.json()["success_count"] == 1:
                with rec.lock:
                    rec.taxii_posts.append(obj["id"])
        i += 1


def _run_digest_cycles(platform) -> list[subprocess.Popen]:
    """Two `digests run` at once, as two schedulers would; beat relays the same outbox rows
    to the two workers meanwhile."""
    instant = platform["digest_instant"].astimezone(UTC).isoformat()
    env = {**os.environ, **platform["env"], "PYTHONPATH": ROOT}
    return [subprocess.Popen(
        [os.path.join(ROOT, ".venv", "bin", "flask"), "--app", "wsgi", "alliance", "digests",
         "run", "--at", instant], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for _ in range(2)]


def _wait_for_outbox(app, timeout: float) -> list:
    """Until no digest or alert message is left to run; returns what is left."""
    from alliance.extensions import db
    from alliance.outbox.models import OutboxMessage

    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            left = db.session.execute(select(OutboxMessage.id, OutboxMessage.kind).where(
                OutboxMessage.done_at.is_(None), OutboxMessage.failed_at.is_(None))).all()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@pytest.mark.timeout(SCALE_SECONDS + 240)
def test_bounded_mixed_load_ends_without_5xx_lost_posts_or_duplicate_mail(platform):
    from alliance.digests.models import Delivery
    from alliance.extensions import db
    from alliance.notes.models import Note, NoteObject, StixObject
    from alliance.outbox.models import OutboxMessage

    app, smtp, rec = platform["app"], platform["smtp"], Recorder()
    started = time.monotonic()
    deadline = started + SCALE_SECONDS
    with ThreadPoolExecutor(WEB_THREADS + TAXII_THREADS) as pool:
        futures = [pool.submit(_web_user, platform, rec, n, deadline) for n in range(WEB_THREADS)]
        futures += [pool.submit(_taxii_client, platform, rec, n, deadline)
                    for n in range(TAXII_THREADS)]
        time.sleep(SCALE_SECONDS / 2)  # the digests then hold the notes posted so far
        cycles = _run_digest_cycles(platform)
        outputs = [proc.communicate(timeout=SCALE_SECONDS + 60) for proc in cycles]
        for future in futures:
            future.result()
    load_seconds = time.monotonic() - started
    for proc, (out, err) in zip(cycles, outputs, strict=True):
        assert proc.returncode == 0, out + err
    left = _wait_for_outbox(app, timeout=90)
    print(f"\nscale: {len(rec.rows)} requests in {load_seconds:.0f} s, "
          f"{len(rec.web_posts)} web posts, {len(rec.taxii_posts)} TAXII posts, "
          f"{len(smtp.messages)} mails\n{rec.summary()}\ndigest cycles: "
          + " | ".join(out.strip() for out, _ in outputs))

    # No 5xx, and no other unexpected answer or failed request either.
    statuses = Counter(status for _kind, status, _s in rec.rows)
    assert not [s for s in statuses if s >= 500 or s == 0], statuses
    assert rec.errors == [], rec.errors[:20]
    assert len(rec.web_posts) >= WEB_THREADS and len(rec.taxii_posts) >= TAXII_THREADS

    with app.app_context():
        # Every post answered with success is stored exactly once.
        titles = Counter(db.session.scalars(select(Note.title).where(
            Note.title.in_(list(rec.web_posts)))).all())
        assert titles == Counter(set(rec.web_posts)), "a web post is missing or stored twice"
        stored = dict(db.session.execute(select(Note.title, Note.report_id).where(
            Note.title.in_(list(rec.web_posts)))).all())
        assert stored == {t: f"report--{u}" for t, u in rec.web_posts.items()}
        rows = Counter(db.session.scalars(select(StixObject.stix_id).where(
            StixObject.stix_id.in_(rec.taxii_posts))).all())
        assert rows == Counter(set(rec.taxii_posts)), "a TAXII post is missing or stored twice"
        links = db.session.scalar(select(func.count()).select_from(NoteObject).join(
            StixObject, NoteObject.object_id == StixObject.id).where(
            StixObject.stix_id.in_(rec.taxii_posts)))
        assert links == len(rec.taxii_posts)

        # Every digest and alert went out, each Message-ID exactly once.
        assert left == [], f"outbox messages never ran: {left[:10]}"
        failed = db.session.scalars(select(OutboxMessage.kind).where(
            OutboxMessage.failed_at.is_not(None))).all()
        assert failed == []
        deliveries = db.session.scalars(select(Delivery)).all()
    with smtp.lock:
        received = Counter(m["Message-ID"] for m in smtp.messages)
    duplicates = {mid: n for mid, n in received.items() if n > 1}
    assert duplicates == {}, duplicates
    digests = [d for d in deliveries if d.kind == "digest"]
    sent = [d for d in digests if d.state == "sent"]
    assert len(sent) >= WEB_THREADS, Counter(d.state for d in digests)  # the load's readers
    assert not [d for d in deliveries if d.state in ("pending", "failed")]
    for d in sent + [d for d in deliveries if d.kind == "alert" and d.state == "sent"]:
        assert received[d.message_id] == 1, d.message_id
    assert sum(1 for mid in received if mid.startswith("<digest-")) == len(sent)
    # The two cycles ran the same period: one ledger row per user, however many schedulers.
    assert len({d.user_id for d in digests}) == len(digests)
    # (No stopwatch here: the timeout mark bounds a hang; the outbox drained, `left == []`,
    # is the work the load left, and it is all done.)
