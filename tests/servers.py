"""Real servers for the tests, started on loopback: redis-server, PostgreSQL, a Celery
worker process, an SMTP server (aiosmtpd). Each start_* returns a handle that stops it."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """redis-server on a free loopback port; stop() and start() again keep the same port."""

    def __init__(self, workdir: str):
        self.port = free_port()
        self.workdir = workdir
        self.proc = None
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed (make test installs it as root: "
                               "apt-get install redis-server)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, listening on loopback only.
    As root, the cluster runs as the 'postgres' system user (initdb refuses root)."""

    def __init__(self, workdir: str):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = bins[-1]
        self.port = free_port()
        self.workdir = workdir
        self.datadir = os.path.join(workdir, "pgdata")
        self.as_root = os.geteuid() == 0

    def _run(self, *args, check=True):
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        result = subprocess.run(cmd, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/alliance_test"

    def start(self) -> "PostgresServer":
        os.makedirs(self.workdir, exist_ok=True)
        if self.as_root:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(os.path.join(self.bin, "initdb"), "-D", self.datadir, "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.datadir, "-w", "-l",
                  os.path.join(self.workdir, "pg.log"), "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} "
                  "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
        self._run(os.path.join(self.bin, "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "alliance_test")
        return self

    def stop(self) -> None:
        self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.datadir, "-m", "immediate",
                  "stop", check=False)


class SMTPSink:
    """A real SMTP server (aiosmtpd) in this process; keeps every message it receives.
    fail_next lets a test make the next deliveries fail with a 4xx or 5xx at DATA;
    rcpt_delays makes the next RCPT TO answers wait that many seconds (rcpt_delayed is set
    when one starts waiting). stop() and start() again keep the same port. envelopes has
    (MAIL FROM options, RCPT TO addresses, the bytes received) of each message kept;
    smtputf8=False makes a server that does not offer SMTPUTF8 (RFC 6531)."""

    def __init__(self, smtputf8: bool = True):
        import asyncio

        self.smtputf8 = smtputf8
        self.messages = []
        self.envelopes = []
        self.lock = threading.Lock()
        self.fail_next: list[str] = []
        self.rcpt_delays: list[float] = []
        self.rcpt_delayed = threading.Event()
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                with sink.lock:
                    delay = sink.rcpt_delays.pop(0) if sink.rcpt_delays else 0
                if delay:
                    sink.rcpt_delayed.set()
                    await asyncio.sleep(delay)
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.extend(rcpt_options)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                with sink.lock:
                    if sink.fail_next:
                        return sink.fail_next.pop(0)
                    sink.messages.append(message_from_bytes(envelope.content,
                                                            policy=policy.default))
                    sink.envelopes.append((list(envelope.mail_options),
                                           list(envelope.rcpt_tos), envelope.content))
                return "250 OK"

        self.handler = Handler()
        self.port = free_port()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "SMTPSink":
        from aiosmtpd.controller import Controller

        # A stopped controller's event loop is closed: a restart needs a new controller.
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=self.smtputf8)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()

    def wait_for(self, count: int, timeout: float = 30.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.1)
        with self.lock:
            return list(self.messages)


class CeleryWorker:
    """A real `celery worker` process (with embedded beat, for the outbox relay)."""

    def __init__(self, env: dict, logfile: str):
        self.env = {**os.environ, **env, "PYTHONPATH": ROOT}
        self.logfile = logfile
        self.proc = None

    def start(self) -> "CeleryWorker":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--beat",
             "--concurrency=1", "--pool=prefork", "--loglevel=INFO", "--without-mingle",
             "--without-gossip", f"--logfile={self.logfile}",
             f"--schedule={self.logfile}.schedule"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        return self

    def log(self) -> str:
        try:
            with open(self.logfile) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def broker_attempts(app, monkeypatch) -> list:
    """What a request does with the broker, counted rather than timed (issue 21): each
    send_task (its retry policy) and each connection attempt to Redis (its connect timeout).
    With Redis down a request must try once, without retries, and leave the rest to the
    relay: that, not a stopwatch, is what keeps it quick."""
    import redis.connection

    seen = []
    celery = app.extensions["celery"]
    send_task = celery.send_task
    connect = redis.connection.Connection._connect

    def counting_send(*args, **kwargs):
        seen.append(("send_task", kwargs.get("retry_policy")))
        return send_task(*args, **kwargs)

    def counting_connect(self):
        seen.append(("connect", self.socket_connect_timeout))
        return connect(self)

    monkeypatch.setattr(celery, "send_task", counting_send)
    monkeypatch.setattr(redis.connection.Connection, "_connect", counting_connect)
    return seen


def assert_tried_once(attempts: list) -> None:
    """broker_attempts' record of a request made while Redis was down: one send_task at most,
    with no retries, and one connection attempt for it, with a timeout."""
    sends = [policy for kind, policy in attempts if kind == "send_task"]
    connects = [timeout for kind, timeout in attempts if kind == "connect"]
    assert len(sends) <= 1 and all(p == {"max_retries": 0} for p in sends), attempts
    assert len(connects) <= len(sends) and all(t for t in connects), attempts
