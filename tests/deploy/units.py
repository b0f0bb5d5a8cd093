"""Shared by the deploy and scale tests: read deploy/systemd units and run their ExecStart
lines on this machine, so that what the tests start is what an operator's hosts start.

The units assume the layout docs/deploy.md describes (code and .venv in /srv/alliance, state in
/var/lib/alliance); `command` maps those onto this checkout and a temporary folder."""
import configparser
import os
import re
import shlex
import signal
import socket
import subprocess
import time

from tests.servers import ROOT, wait_for_port

DEPLOY = os.path.join(ROOT, "deploy")
SYSTEMD = os.path.join(DEPLOY, "systemd")
APP_DIR = "/srv/alliance"
STATE_DIR = "/var/lib/alliance"
ENV_FILE = "/etc/alliance/alliance.env"


def read_unit(name: str) -> configparser.ConfigParser:
    """A unit file as sections of keys (the last value wins for repeated keys, as for
    ExecStart in systemd; Environment= lines are read with `environment`)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    with open(os.path.join(SYSTEMD, name)) as f:
        parser.read_file(f)
    return parser


def environment(name: str) -> dict:
    """The unit's Environment= assignments (all of them; configparser keeps only the last)."""
    values = {}
    with open(os.path.join(SYSTEMD, name)) as f:
        for line in f:
            if line.startswith("Environment="):
                for word in shlex.split(line.split("=", 1)[1]):
                    key, _, value = word.partition("=")
                    values[key] = value
    return values


def _expand(word: str, instance: str, env: dict) -> str:
    word = word.replace("%%", "\0").replace("%i", instance).replace("%H", socket.gethostname())
    word = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word)
    return word.replace("\0", "%")


def command(name: str, *, env: dict, state_dir: str, instance: str = "") -> list[str]:
    """The unit's ExecStart as argv, with specifiers and ${VARS} expanded (the unit's own
    Environment= first, then `env`, as EnvironmentFile= overrides it) and the install paths
    mapped onto this checkout (APP_DIR) and `state_dir` (STATE_DIR)."""
    exec_start = read_unit(name)["Service"]["ExecStart"]
    merged = {**environment(name), **env}
    argv = [_expand(word, instance, merged) for word in shlex.split(exec_start)]
    return [word.replace(APP_DIR, ROOT).replace(STATE_DIR, state_dir) for word in argv]


class UnitProcess:
    """One unit's ExecStart running in its own process group, output to a log file."""

    def __init__(self, name: str, *, env: dict, state_dir: str, logfile: str,
                 instance: str = ""):
        self.argv = command(name, env=env, state_dir=state_dir, instance=instance)
        # As systemd does: the unit's Environment=, then the environment file's values.
        self.env = {**os.environ, **environment(name), **env, "PYTHONPATH": ROOT}
        self.logfile = logfile
        self.proc = None

    def start(self) -> "UnitProcess":
        log = open(self.logfile, "ab")  # the child keeps its own copy
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        return self

    def log(self) -> str:
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} did not log {text!r}:\n"
                                   + self.log()[-3000:])
            time.sleep(0.2)

    def wait_for_port(self, port: int, timeout: float = 60.0) -> None:
        try:
            wait_for_port(port, timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log()[-3000:]}") from exc

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
