"""The schema comes only from migrations: they build what the models describe, and go down
to empty and up again cleanly, on SQLite and on PostgreSQL (the pass the suite runs on)."""
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from alliance import create_app
from alliance.extensions import db
from alliance.notes.search import include_object


def test_the_migrated_database_matches_the_models(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_the_model_check_notices_a_column_the_migrations_lack(app):
    """The comparison above is not blind: a column only the models have is reported."""
    from sqlalchemy import Column, Integer, MetaData

    extra = MetaData()
    for table in db.metadata.sorted_tables:
        table.to_metadata(extra)
    extra.tables["notes"].append_column(Column("not_migrated", Integer))
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, extra)
    assert any(d[0] == "add_column" and d[3].name == "not_migrated" for d in diff), diff


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


def _objects(engine) -> set[str]:
    """Tables, plus triggers (SQLite) or functions and text search configurations
    (PostgreSQL) that the migrations create."""
    inspector = db.inspect(engine)
    names = set(inspector.get_table_names())
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names |= {f"trigger:{n}" for n in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()}
        else:
            names |= {f"tsconfig:{n}" for n in conn.execute(text(
                "SELECT cfgname FROM pg_ts_config WHERE cfgnamespace = "
                "'public'::regnamespace")).scalars()}
            names |= {f"index:{n}" for n in conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).scalars()}
    return names


def test_migrations_go_down_to_empty_and_up_again(empty_database_url):
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url})
    with fresh.app_context():
        upgrade()
        built = _objects(db.engine)
        assert {"memberships", "notes", "stix_objects", "outbox_messages",
                "deliveries", "api_keys"} <= built, built
        downgrade(revision="base")
        left = _objects(db.engine)
        assert left <= {"alembic_version"} | {n for n in left if n.startswith("index:")
                                              and "alembic_version" in n}, left
        upgrade()
        assert _objects(db.engine) == built
        # And the rebuilt schema still matches the models.
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            assert compare_metadata(context, db.metadata) == []
        db.engine.dispose()
