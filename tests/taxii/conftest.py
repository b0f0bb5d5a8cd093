"""The app served over real HTTP on loopback for a module's TAXII tests (tests.taxii.live)."""
import pytest

from tests.taxii.live import serving


@pytest.fixture(scope="module")
def live(app):
    with serving(app) as url:
        yield url
