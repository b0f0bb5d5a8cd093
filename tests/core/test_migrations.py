"""The schema comes only from migrations: they build what the models describe, and go down
and up again cleanly."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from alliance import create_app
from alliance.extensions import db
from alliance.notes.search import include_object


def test_the_migrated_database_matches_the_models(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_migrations_go_down_to_empty_and_up_again(tmp_path):
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/m.db"})
    with fresh.app_context():
        upgrade()
        assert "memberships" in db.inspect(db.engine).get_table_names()
        downgrade(revision="base")
        assert set(db.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        assert db.session.execute(db.text("SELECT count(*) FROM sqlite_master WHERE type = "
                                          "'trigger'")).scalar() == 0
        upgrade()
        assert "outbox_messages" in db.inspect(db.engine).get_table_names()
