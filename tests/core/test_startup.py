"""Starting a process stays cheap: building the app (what `flask --app wsgi alliance --help`,
every other command, the web and the workers do first) imports none of the heavy libraries
only some paths use. They are imported where they are used, and those paths still work in a
fresh process. How fast a start is, is measured by bench/startup.py, not here."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.nodb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Each costs a noticeable part of a start (bench/startup.py); none is needed to build the app.
HEAVY = (
    "alembic", "flask_migrate", "mako",  # migrations: `flask db ...`, the readiness probe
    "stix2", "stix2patterns", "antlr4", "requests",  # STIX: checking and building objects
    "redis",  # the readiness probe and the metrics scrape
    "zxcvbn",  # the password policy
    "sqlalchemy.dialects.postgresql",  # PostgreSQL-only statements (a PostgreSQL engine loads it)
    "pymisp", "jsonschema",  # the warning lists' and ATT&CK's data are read as files
)
# Runs `flask <args>` in this process, then writes the names of the imported modules to the
# file named by MODULES_OUT (whatever the exit code).
FLASK = """
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
from flask.cli import main
sys.argv = ["flask", *sys.argv[1:]]
main()
"""


@pytest.fixture
def run(tmp_path):
    """run(code, *args) -> (CompletedProcess, imported module names): `python -c code` in a
    fresh process, in the checkout, with the development settings and a throw-away
    instance folder."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALLIANCE_ENV", "DATABASE_URL", "REDIS_URL", "MAIL_URL", "SECRET_KEY",
                        "FLASK_APP")}
    out = tmp_path / "modules.json"
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), MODULES_OUT=str(out),
               DATABASE_URL=f"sqlite:///{tmp_path / 'alliance.db'}")

    def run(code, *args):
        result = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result, set(json.loads(out.read_text())) if out.exists() else set()

    return run


def _heavy(modules) -> list[str]:
    return sorted(m for m in HEAVY if m in modules)


def test_alliance_help_lists_the_commands_without_importing_heavy_modules(run):
    result, modules = run(FLASK, "--app", "wsgi", "alliance", "--help")

    for command in ("create-admin", "import", "api-key", "digests", "seed-demo",
                    "outbox-relay", "sqlite-backup"):
        assert command in result.stdout
    assert "alliance" in modules and "alliance.cli" in modules  # the app was built
    assert _heavy(modules) == []


def test_flask_help_lists_the_migrations_group_without_importing_alembic(run):
    result, modules = run(FLASK, "--app", "wsgi", "--help")

    assert "Perform database migrations." in result.stdout
    assert "alliance" in result.stdout
    assert _heavy(modules) == []


def test_the_app_factory_imports_no_heavy_module(run):
    _, modules = run("""
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
from alliance import create_app
app = create_app()
assert "celery" in app.extensions and "migrate" in app.extensions
""")

    assert _heavy(modules) == []


def test_the_migration_commands_still_load_flask_migrate(run):
    result, modules = run(FLASK, "--app", "wsgi", "db", "--help")
    assert "upgrade" in result.stdout and "downgrade" in result.stdout
    assert "flask_migrate" in modules

    run(FLASK, "--app", "wsgi", "db", "upgrade")
    result, _ = run(FLASK, "--app", "wsgi", "db", "current")
    assert "(head)" in result.stdout


def test_what_needs_the_heavy_modules_still_gets_them(run):
    """In one fresh process: the migrations run, the readiness probe reads the revision,
    an indicator is checked and built with stix2, a password goes through zxcvbn."""
    result, modules = run("""
import sys
from flask_migrate import upgrade
from alliance import create_app
from alliance.auth.services import check_password_policy
from alliance.core.errors import DomainError
from alliance.stix.validation import check_object
from alliance.ops.services import check_database

app = create_app()
with app.app_context():
    upgrade()
    print("database:", check_database())
    indicator = {"type": "indicator", "spec_version": "2.1",
                 "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                 "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                 "pattern": "[ipv4-addr:value = '203.0.113.9']", "pattern_type": "stix",
                 "valid_from": "2026-01-01T00:00:00Z"}
    print("good indicator:", check_object(indicator))
    print("bad pattern:", check_object(dict(indicator, pattern="[ipv4-addr:value = ")))
    try:
        check_password_policy("abcdefghijkl")
    except DomainError as exc:
        print("weak password:", exc.message)
    check_password_policy("violet-harbour-lantern-quietly-93")
print("loaded:", sorted(m for m in ("alembic", "stix2", "zxcvbn") if m in sys.modules))
""")

    assert "database: ok" in result.stdout
    assert "good indicator: []" in result.stdout
    assert "bad pattern: [Problem(" in result.stdout and "'pattern'" in result.stdout
    assert "weak password: This password is too weak" in result.stdout
    assert "loaded: ['alembic', 'stix2', 'zxcvbn']" in result.stdout


def test_the_unknown_address_decoy_costs_what_a_real_password_hash_does():
    """The decoy hash is written out in alliance/auth/services.py (hashing it at import cost
    every process ~0.2 s); it must keep the cost parameters hash_password uses, or an unknown
    address would answer faster than a known one. (The tests' own fixture swaps it for a cheap
    one, so it is read from a fresh process.)"""
    code = ("from alliance.auth.services import _DUMMY_HASH, hash_password\n"
            "from werkzeug.security import check_password_hash\n"
            "print(_DUMMY_HASH.split('$')[0], hash_password('x' * 12).split('$')[0],"
            " check_password_hash(_DUMMY_HASH, 'not-a-real-password-0000'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)

    decoy, real, matches = result.stdout.split()
    assert decoy == real and matches == "True"
