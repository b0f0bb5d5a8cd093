"""The backup and restore of docs/deploy.md, run as written: pg_dump / pg_restore of a migrated
PostgreSQL database into a new one, and `flask alliance sqlite-backup` (SQLite's online backup
API) of a database that another connection is writing to. Each restored copy is one the app
accepts: at the migrations' head, with the data in it."""
import os
import sqlite3
import subprocess
import tempfile
import threading

import pytest

from tests.servers import ROOT, PostgresServer

FLASK = [os.path.join(ROOT, ".venv", "bin", "flask"), "--app", "wsgi"]
ADMIN_PASSWORD = "Harbour-Lantern-Quartz-8841"


def _flask(env: dict, *args, stdin: str | None = None) -> str:
    result = subprocess.run(FLASK + list(args), cwd=ROOT, input=stdin, capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT, **env})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _platform_env(database_url: str, tmp_path) -> dict:
    return {"ALLIANCE_ENV": "production", "SECRET_KEY": "backup-test-" + "x" * 40,
            "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "instance"),
            "MAIL_URL": str(tmp_path / "maildir"), "LOG_LEVEL": "WARNING"}


@pytest.fixture
def postgres():
    workdir = tempfile.mkdtemp(prefix="alliance-backup-pg-")
    server = PostgresServer(workdir).start()
    yield server
    server.stop()
    subprocess.run(["rm", "-rf", workdir], check=False)


def test_pg_dump_and_pg_restore_give_back_a_working_database(postgres, tmp_path):
    env = _platform_env(postgres.url, tmp_path)
    _flask(env, "db", "upgrade")
    _flask(env, "alliance", "create-admin", "ops@alliance.test", "--password-stdin",
           stdin=ADMIN_PASSWORD + "\n")
    head = _flask(env, "db", "current").split()[0]

    dump = str(tmp_path / "alliance.dump")
    subprocess.run([os.path.join(postgres.bin, "pg_dump"), "--format=custom", f"--file={dump}",
                    postgres.url], check=True, capture_output=True, timeout=120)
    restored = postgres.url.rsplit("/", 1)[0] + "/alliance_restored"
    postgres._run(os.path.join(postgres.bin, "createdb"), "-h", "127.0.0.1", "-p",
                  str(postgres.port), "-U", "postgres", "alliance_restored")
    subprocess.run([os.path.join(postgres.bin, "pg_restore"), "--no-owner",
                    f"--dbname={restored}", dump], check=True, capture_output=True, timeout=120)

    env = _platform_env(restored, tmp_path)
    assert _flask(env, "db", "current").split()[0] == head
    _flask(env, "db", "upgrade")  # nothing to do, and no error
    import psycopg

    with psycopg.connect(restored) as conn:
        emails = [row[0] for row in conn.execute("SELECT email FROM users")]
    assert emails == ["ops@alliance.test"]


def test_sqlite_backup_copies_a_database_that_is_being_written(tmp_path):
    path = tmp_path / "alliance.db"
    env = _platform_env(f"sqlite:///{path}", tmp_path)
    _flask(env, "db", "upgrade")
    _flask(env, "alliance", "create-admin", "ops@alliance.test", "--password-stdin",
           stdin=ADMIN_PASSWORD + "\n")

    stop = threading.Event()

    def writer():  # another process's writes, meanwhile (WAL, as the app sets it)
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)")
        n = 0
        while not stop.is_set():
            with conn:
                conn.execute("INSERT INTO scratch VALUES (?)", (n,))
            n += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        backup = tmp_path / "backup.db"
        out = _flask(env, "alliance", "sqlite-backup", str(backup))
    finally:
        stop.set()
        thread.join(30)
    assert "Backed up" in out
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT email FROM users").fetchall() == [("ops@alliance.test",)]
    # Restore = the copy in place of the database (platform stopped): the app runs on it.
    restored_env = _platform_env(f"sqlite:///{backup}", tmp_path)
    assert _flask(restored_env, "db", "current").split()[0] == \
        _flask(env, "db", "current").split()[0]
    # A second backup to the same file is refused rather than overwriting it.
    result = subprocess.run(FLASK + ["alliance", "sqlite-backup", str(backup)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT, **env})
    assert result.returncode != 0 and "exists" in result.stderr


def test_sqlite_backup_refuses_postgresql(tmp_path):
    env = _platform_env("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    result = subprocess.run(FLASK + ["alliance", "sqlite-backup", str(tmp_path / "x.db")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT, **env})
    assert result.returncode != 0 and "pg_dump" in result.stderr
