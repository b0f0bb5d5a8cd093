"""Helpers for the read-rule tests: a clean database inside one test (Hypothesis runs many
examples per test, and the `db` fixture cleans only after the test)."""
from sqlalchemy import delete

from alliance.extensions import db


def reset_database() -> None:
    """Delete every row, children first. (The `db` fixture TRUNCATEs on PostgreSQL; for the
    few rows of one example, DELETE is several times faster there.)"""
    db.session.rollback()
    db.session.remove()
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(delete(table))
