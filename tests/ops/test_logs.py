"""Request ids and structured logs."""
import json
import logging
import os
import re
import time

import pytest

from tests import factories
from tests.servers import CeleryWorker


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_request_without_an_id_gets_a_new_one_per_request(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_a_sane_incoming_request_id_is_returned(client):
    response = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2026:42_x"})
    assert response.headers["X-Request-ID"] == "lb-7f3a.2026:42_x"


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "a" * 129, "id with spaces",
                                     "ok\u202eevil", "x;rm -rf /"])
def test_a_hostile_incoming_request_id_is_replaced(client, hostile):
    returned = client.get("/healthz", headers={"X-Request-ID": hostile}).headers["X-Request-ID"]
    assert returned != hostile
    assert re.fullmatch(r"[0-9a-f]{32}", returned)


def test_error_responses_carry_the_request_id_too(client):
    response = client.get("/no-such-page", headers={"X-Request-ID": "trace-404"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "trace-404"


def test_json_access_log_line_has_request_id_status_and_timing(make_app, capsys):
    json_app = make_app(LOG_FORMAT="json", LOG_LEVEL="INFO")
    capsys.readouterr()
    response = json_app.test_client().get("/no-such-page", headers={"X-Request-ID": "req-abc"},
                                          environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 404
    access = [e for e in _json_lines(capsys.readouterr().err) if e["logger"] == "alliance.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "req-abc"
    assert line["status"] == 404
    assert line["method"] == "GET"
    assert line["path"] == "/no-such-page"
    assert line["remote_addr"] == "192.0.2.7"
    assert line["user_id"] is None
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["ts"])


def test_every_record_during_a_request_carries_its_id(make_app, capsys):
    json_app = make_app(LOG_FORMAT="json")

    @json_app.get("/_test/log-something")
    def log_something():
        logging.getLogger("alliance.somewhere").warning("inside the view %s", 42)
        return "ok"

    capsys.readouterr()
    json_app.test_client().get("/_test/log-something", headers={"X-Request-ID": "inner-1"})
    lines = _json_lines(capsys.readouterr().err)
    inner = [e for e in lines if e["logger"] == "alliance.somewhere"]
    assert inner == [{**inner[0], "message": "inside the view 42", "request_id": "inner-1",
                      "level": "WARNING"}]
    logging.getLogger("alliance.somewhere").warning("outside any request")
    outside = _json_lines(capsys.readouterr().err)
    assert outside and "request_id" not in outside[0]


def test_access_log_names_the_signed_in_user(make_app, member, capsys):
    json_app = make_app(LOG_FORMAT="json")
    client = json_app.test_client()
    factories.login(client, member)
    capsys.readouterr()
    assert client.get("/").status_code == 200
    access = [e for e in _json_lines(capsys.readouterr().err) if e["logger"] == "alliance.access"]
    assert access[-1]["user_id"] == member.id


def test_text_format_is_not_json_and_still_has_the_request_id(make_app, capsys):
    text_app = make_app(LOG_FORMAT="text")
    capsys.readouterr()
    text_app.test_client().get("/healthz", headers={"X-Request-ID": "text-1"})
    err = capsys.readouterr().err
    assert "[alliance.access] [text-1] GET /healthz 200" in err
    assert not _json_lines(err)


def test_a_bad_log_format_or_level_refuses_to_start(make_app):
    with pytest.raises(RuntimeError, match="LOG_FORMAT"):
        make_app(LOG_FORMAT="xml")
    with pytest.raises(RuntimeError, match="LOG_LEVEL"):
        make_app(LOG_LEVEL="LOUD")


@pytest.mark.servers
def test_the_celery_worker_logs_json_lines_to_its_logfile(app, redis_server, tmp_root):
    logfile = os.path.join(tmp_root, f"json-worker-{time.monotonic_ns()}.log")
    worker = CeleryWorker({
        "ALLIANCE_ENV": "testing", "LOG_FORMAT": "json",
        "TEST_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgresql+psycopg://", "postgresql://"),
        "REDIS_URL": redis_server.url, "MAIL_URL": app.config["MAIL_URL"],
        "INSTANCE_PATH": os.path.join(tmp_root, "json-worker-instance"),
    }, logfile=logfile).start()
    try:
        deadline = time.monotonic() + 60
        while "ready." not in worker.log():
            assert time.monotonic() < deadline and worker.proc.poll() is None, worker.log()[-3000:]
            time.sleep(0.2)
    finally:
        worker.stop()
    lines = [line for line in worker.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    ready = [e for e in entries if e["message"].endswith("ready.")]
    assert ready and ready[0]["level"] == "INFO" and ready[0]["logger"].startswith("celery")
