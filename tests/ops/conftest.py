"""Helpers for the operations tests: fresh apps with their own settings, logging restored."""
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def make_app(app):
    """create_app on the tests' database with overrides. The limiter extension is shared by
    every app in the process, so it stays in memory; the root logger is restored after."""
    from alliance import create_app

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def make(**overrides):
        return create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                           "MAIL_URL": app.config["MAIL_URL"], "BASE_URL": app.config["BASE_URL"],
                           "RATELIMIT_STORAGE_URI": "memory://", **overrides})

    yield make
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def samples(body: bytes) -> dict:
    """{(name, frozenset(labels)): value} of an exposition text."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def sample(body: bytes, name: str, **labels) -> float | None:
    return samples(body).get((name, frozenset(labels.items())))
