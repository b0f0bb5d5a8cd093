"""`flask` commands, run as a developer runs them in the checkout (the development settings,
no INSTANCE_PATH), write nothing in the checkout outside instance/: the database, the broker's
folder, the maildir and the secret key all live there. Run in a copy of the checkout, so that
a developer's own instance/ is left alone."""
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.nodb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Written by Python or the tools, not by the app; the tests are not needed to run commands.
IGNORED = ("__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "node_modules", "tests")
COMMANDS = [
    ["alliance", "--help"],
    ["db", "upgrade"],
    ["alliance", "seed-demo"],
    ["routes"],
]


def _files(root):
    """path -> (size, mtime) of every file under root but instance/ and the ignored folders."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED
                   and os.path.join(folder, d) != os.path.join(root, "instance")]
        for name in files:
            if name.endswith(".pyc"):
                continue
            path = os.path.join(folder, name)
            stat = os.stat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture
def checkout(tmp_path):
    """A copy of the checkout's files (tracked, or new and not ignored), tests aside."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    copy = tmp_path / "checkout"
    for name in listed:
        source = os.path.join(ROOT, name)
        if not name or name.split("/")[0] in IGNORED or not os.path.isfile(source):
            continue
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return copy


def test_flask_commands_write_nothing_outside_instance(checkout):
    env = {k: v for k, v in os.environ.items()
           if k not in ("INSTANCE_PATH", "ALLIANCE_ENV", "DATABASE_URL", "TEST_DATABASE_URL",
                        "REDIS_URL", "MAIL_URL", "SECRET_KEY", "BASE_URL")}
    env.update(PYTHONPATH=str(checkout), FLASK_APP="wsgi")
    before = _files(checkout)
    for command in COMMANDS:
        result = subprocess.run([sys.executable, "-m", "flask", *command], cwd=checkout,
                                env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"flask {' '.join(command)}:\n{result.stderr[-3000:]}"
    after = _files(checkout)

    assert (checkout / "instance" / "alliance.db").exists()  # the commands did their work
    written = sorted(path for path in after if before.get(path) != after[path])
    removed = sorted(path for path in before if path not in after)
    assert written == [] and removed == []
