"""Fixtures: the app on a migrated database (SQLite file, or a throwaway PostgreSQL cluster
with ALLIANCE_TEST_DB=postgresql), a clean database per test, clients, factories and
role fixtures (as STYLE.md describes)."""
import os
import shutil
import tempfile
import uuid

import pytest

_TMP = tempfile.mkdtemp(prefix="alliance-tests-")
os.environ["INSTANCE_PATH"] = os.path.join(_TMP, "instance")
os.environ["ALLIANCE_ENV"] = "testing"
for _var in ("DATABASE_URL", "TEST_DATABASE_URL", "REDIS_URL", "MAIL_URL", "SECRET_KEY"):
    os.environ.pop(_var, None)

from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests import factories  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402

pytest_plugins = ["tests.servers_fixtures"]


def pytest_report_header(config):
    return f"database: {os.environ.get('ALLIANCE_TEST_DB', 'sqlite')}; tmp: {_TMP}"


@pytest.fixture(scope="session")
def tmp_root():
    yield _TMP
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(tmp_root):
    if os.environ.get("ALLIANCE_TEST_DB") == "postgresql":
        # Its own folder: the cluster runs as the postgres user, who cannot enter tmp_root.
        workdir = tempfile.mkdtemp(prefix="alliance-pg-")
        server = PostgresServer(workdir).start()
        yield server.url
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        yield "sqlite:///" + os.path.join(tmp_root, "alliance-test.db")


class RequestIsolatingClient(FlaskClient):
    """A test client whose every request runs in an application context of its own, as in
    production. The `db` fixture keeps one app context open for the whole test and Flask
    reuses an open context for requests, so Flask-Login's user cached in `g` (and the database
    session) would otherwise carry over from one request, and one client, to the next."""

    def open(self, *args, **kwargs):
        from alliance.extensions import db as _db

        with self.application.app_context():
            response = super().open(*args, **kwargs)
        _db.session.expire_all()  # the test's own session then reads what the request wrote
        return response


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch):
    """Speed: the factories' users and the unknown-address decoy get a low-cost scrypt hash
    (a full-cost check takes ~0.2 s and the tests sign in hundreds of times). Hashes made by
    the services under test keep their real cost."""
    from werkzeug.security import generate_password_hash

    from alliance.auth import services

    cheap = "scrypt:1024:8:1"
    user_hash = generate_password_hash(factories.PASSWORD, method=cheap)
    monkeypatch.setattr(factories, "_password_hash", lambda: user_hash)
    monkeypatch.setattr(services, "_DUMMY_HASH",
                        generate_password_hash("not-a-real-password-0000", method=cheap))


@pytest.fixture(scope="session")
def app(database_url, tmp_root):
    from flask_migrate import upgrade

    from alliance import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url,
                      "MAIL_URL": os.path.join(tmp_root, "maildir"),
                      "BASE_URL": "http://alliance.test"})
    app.test_client_class = RequestIsolatingClient
    with app.app_context():
        upgrade()  # the schema comes from the migrations, as in production
    return app


@pytest.fixture(autouse=True)
def db(request, app):
    """A clean database for every test (rows deleted afterwards, so that other processes —
    a Celery worker, a browser's server — see the same data as the test)."""
    from alliance.extensions import db as _db
    from alliance.extensions import limiter

    ctx = app.app_context()
    ctx.push()
    limiter.reset()
    yield _db
    _db.session.rollback()
    _db.session.remove()
    tables = [t.name for t in reversed(_db.metadata.sorted_tables)]
    with _db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))  # noqa: S608
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 (our own table names)
    ctx.pop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_client(app):
    return app.test_client


@pytest.fixture
def login():
    return factories.login


# --- role fixtures: an alliance "Atlantic" founded by a coordinator's organisation ----------

@pytest.fixture
def coordinator(db):
    """Org admin of 'Coordinating Org' and the first coordinator of alliance 'atlantic'."""
    org = factories.make_org("Coordinating Org")
    user = factories.make_user(org, "coord@coord.example", role="org_admin")
    factories.make_alliance(user, slug="atlantic", name="Atlantic Alliance")
    return user


@pytest.fixture
def alliance(coordinator):
    from alliance.alliances.services import get_alliance

    return get_alliance("atlantic")


@pytest.fixture
def member_admin(alliance):
    """Org admin of an organisation that is an active member of 'atlantic'."""
    org = factories.make_org("Member Org")
    user = factories.make_user(org, "admin@member.example", role="org_admin")
    factories.add_member(alliance, org, "active")
    return user


@pytest.fixture
def member(member_admin):
    """A plain member user of the active member organisation."""
    return factories.make_user(member_admin.organisation, "analyst@member.example")


@pytest.fixture
def outsider(db):
    """Org admin of a vetted organisation with no membership anywhere."""
    org = factories.make_org("Outside Org")
    return factories.make_user(org, "admin@outside.example", role="org_admin")


@pytest.fixture
def platform_admin(db):
    return factories.make_admin("root@platform.example")


@pytest.fixture
def as_coordinator(client, coordinator):
    factories.login(client, coordinator)
    return client


@pytest.fixture
def as_member(client, member):
    factories.login(client, member)
    return client


@pytest.fixture
def as_outsider(client, outsider):
    factories.login(client, outsider)
    return client


@pytest.fixture
def as_admin(client, platform_admin):
    factories.login(client, platform_admin)
    return client


@pytest.fixture
def empty_database_url(app, tmp_path):
    """A new empty database of the kind the suite runs on: a SQLite file, or a database of
    its own in the suite's PostgreSQL cluster (dropped afterwards)."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        yield f"sqlite:///{tmp_path}/m.db"
        return
    name = "migrations_" + uuid.uuid4().hex[:8]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
