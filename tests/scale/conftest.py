import pytest


@pytest.fixture(autouse=True)
def db():
    """These tests run the app in its own processes on their own databases: no per-test
    database from tests/conftest.py."""
    yield None
