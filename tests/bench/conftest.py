"""A database of its own, filled once by bench-data, for the query-plan tests (the `db`
fixture empties the test database after every test; this one stays for the module)."""
import json
import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.benchdata import bench_data_command

# Notes to fill (~10 STIX objects each). PostgreSQL needs more: with few rows its planner
# rightly prefers sorting a small collection to walking the keyset index, and the tests would
# judge a plan that only small databases get.
PLAN_NOTES = {"sqlite": 4000, "postgresql": 20000}


@pytest.fixture(scope="session")
def plans_app(app, tmp_root):
    """The app on a second database (a SQLite file, or a second database in the test
    PostgreSQL cluster), migrated and filled with bench-data, statistics up to date
    (bench-data ends with VACUUM ANALYZE on PostgreSQL)."""
    from flask_migrate import upgrade

    from alliance import create_app

    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    notes = int(os.environ.get("PLAN_NOTES") or PLAN_NOTES[url.get_backend_name()])
    if url.get_backend_name() == "postgresql":
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS alliance_plans"))
            conn.execute(text("CREATE DATABASE alliance_plans"))
        admin.dispose()
        plans_url = url.set(database="alliance_plans").render_as_string(hide_password=False)
    else:
        plans_url = "sqlite:///" + os.path.join(tmp_root, "alliance-plans.db")
        if os.path.exists(plans_url[10:]):
            os.remove(plans_url[10:])
    plans = create_app({"SQLALCHEMY_DATABASE_URI": plans_url,
                        "MAIL_URL": os.path.join(tmp_root, "maildir-plans"),
                        "BASE_URL": "http://alliance.test",
                        "TAXII_RATE_LIMIT": "100000 per minute",
                        "RATELIMIT_STORAGE_URI": "memory://"})
    with plans.app_context():
        upgrade()
        result = plans.test_cli_runner().invoke(bench_data_command, [
            "--notes", str(notes), "--orgs", "60",
            "--alliances", "15", "--seed", "11", "--json",
            # What bench/paths.py times too: notes of 1,000 objects, a value in a tenth of
            # the notes (correlation, a common observable), words in 5 notes each.
            "--large-notes", "2", "--shared-value-notes", str(notes // 10),
            "--rare-words", "10"])
    assert result.exit_code == 0, result.output
    plans.config["BENCH"] = json.loads(result.stdout)
    yield plans
    with plans.app_context():
        from alliance.extensions import db

        db.session.remove()
        db.engine.dispose()
