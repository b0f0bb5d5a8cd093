"""Fixtures that start real servers; imported by the test modules that need them."""
import os
import time

import pytest

from tests.servers import CeleryWorker, RedisServer, SMTPSink


@pytest.fixture(scope="module")
def smtp():
    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_root):
    workdir = os.path.join(tmp_root, f"redis-{time.monotonic_ns()}")
    os.makedirs(workdir)
    server = RedisServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_app(app, redis_server, smtp):
    """The app as production runs it: Redis broker, SMTP mail, same database as the tests."""
    from alliance import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "REDIS_URL": redis_server.url, "MAIL_URL": smtp.url,
                       "BASE_URL": app.config["BASE_URL"], "OUTBOX_PUBLISH_TIMEOUT": 0.5,
                       # The limiter extension is shared by every app in this process; keep
                       # it off the Redis this module stops and starts.
                       "RATELIMIT_STORAGE_URI": "memory://"})


@pytest.fixture(scope="module")
def worker(app, redis_server, smtp, tmp_root):
    """A real Celery worker process with embedded beat relaying the outbox every second."""
    proc = CeleryWorker({
        "ALLIANCE_ENV": "testing",
        "TEST_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgresql+psycopg://", "postgresql://"),
        "REDIS_URL": redis_server.url, "MAIL_URL": smtp.url,
        "BASE_URL": app.config["BASE_URL"], "OUTBOX_RELAY_SECONDS": "1",
        "INSTANCE_PATH": os.path.join(tmp_root, "worker-instance"),
    }, logfile=os.path.join(tmp_root, f"worker-{time.monotonic_ns()}.log")).start()
    deadline = time.monotonic() + 60
    while "ready." not in proc.log():
        if time.monotonic() > deadline or proc.proc.poll() is not None:
            raise RuntimeError("the Celery worker did not start:\n" + proc.log()[-3000:])
        time.sleep(0.2)
    yield proc
    proc.stop()
