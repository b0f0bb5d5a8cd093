"""deploy/ is what an operator installs: each file is loaded by the tool that will read it in
production (gunicorn, systemd-analyze, nginx -t), checked against the code it must agree with
(config.py's variables, MAX_CONTENT_LENGTH, PROXY_FIX_HOPS), and the whole chain nginx (TLS) →
gunicorn (deploy/gunicorn.conf.py, started from the web unit's ExecStart) → app is run once
on loopback to show that the app sees the client's scheme and address through the proxy."""
import ast
import glob
import http.client
import json
import os
import re
import secrets
import shutil
import sqlite3
import ssl
import subprocess
import sys

import pytest
import requests
from requests.adapters import HTTPAdapter

from config import Config
from tests.deploy.units import APP_DIR, DEPLOY, ENV_FILE, UnitProcess, command, read_unit
from tests.servers import ROOT, free_port, wait_for_port

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
UNITS = ["alliance-web.service", "alliance-worker@.service", "alliance-beat.service"]
ENV_EXAMPLE = os.path.join(DEPLOY, "alliance.env.example")
NGINX_SITE = os.path.join(DEPLOY, "nginx", "alliance.conf")
# Variables the deployment reads outside config.py (besides the app's own modules).
DEPLOY_READERS = [os.path.join(DEPLOY, "gunicorn.conf.py")]


# --- environment variables ------------------------------------------------------------------

def _environ_names(path: str, skip_classes=()) -> set[str]:
    """Names read with os.environ.get / os.environ[...] / os.getenv in a Python file, except
    inside the named classes."""
    tree = ast.parse(open(path).read())
    names = set()

    def visit(node, skipping=False):
        if isinstance(node, ast.ClassDef) and node.name in skip_classes:
            skipping = True
        if not skipping:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = ast.unparse(node.func)
                if func in ("os.environ.get", "os.getenv", "os.environ.setdefault") and \
                        node.args and isinstance(node.args[0], ast.Constant):
                    names.add(node.args[0].value)
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" \
                    and isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
        for child in ast.iter_child_nodes(node):
            visit(child, skipping)

    visit(tree)
    return names


def _example_names() -> list[str]:
    names = []
    with open(ENV_EXAMPLE) as f:
        for line in f:
            match = re.match(r"^#?([A-Z][A-Z0-9_]*)=", line)
            if match:
                names.append(match.group(1))
    return names


def test_the_env_example_lists_every_variable_config_py_reads():
    # TestingConfig's variables (TEST_DATABASE_URL) are the test suite's, not an operator's.
    wanted = _environ_names(os.path.join(ROOT, "config.py"), skip_classes={"TestingConfig"})
    wanted |= _environ_names(os.path.join(ROOT, "alliance", "__init__.py"))
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PROXY_FIX_HOPS", "ALLIANCE_ENV"} <= wanted
    assert wanted - set(_example_names()) == set()


def test_the_env_example_names_nothing_the_deployment_does_not_read():
    names = _example_names()
    assert len(names) == len(set(names)), "a variable is listed twice"
    known = set()
    for path in [os.path.join(ROOT, "config.py"), *DEPLOY_READERS,
                 *glob.glob(os.path.join(ROOT, "alliance", "**", "*.py"), recursive=True),
                 *glob.glob(os.path.join(ROOT, "workers", "*.py"))]:
        known |= _environ_names(path)
    for unit in UNITS:  # ${NAME} in ExecStart, Environment=NAME=...
        text = open(os.path.join(DEPLOY, "systemd", unit)).read()
        known |= set(re.findall(r"\$\{(\w+)\}", text))
        known |= set(re.findall(r"^Environment=(\w+)=", text, re.M))
    assert set(names) - known == set()


def test_the_env_example_pairs_proxy_fix_with_one_nginx_hop_and_is_production():
    values = {}
    with open(ENV_EXAMPLE) as f:
        for line in f:
            match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
            if match:
                values[match.group(1)] = match.group(2)
    assert values["PROXY_FIX_HOPS"] == "1"
    assert values["ALLIANCE_ENV"] == "production"
    assert values["BASE_URL"].startswith("https://")


# --- gunicorn ---------------------------------------------------------------------------------

def _deploy_env(tmp_path, **extra) -> dict:
    env = {"ALLIANCE_ENV": "production", "SECRET_KEY": secrets.token_hex(32),
           "DATABASE_URL": f"sqlite:///{tmp_path}/alliance.db",
           "INSTANCE_PATH": str(tmp_path / "instance"), "MAIL_URL": str(tmp_path / "maildir"),
           "BASE_URL": "https://alliance.test", "PROXY_FIX_HOPS": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
           "PYTHONPATH": ROOT}
    env.update(extra)
    # The test process's own database and Redis are not passed on.
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("TEST_DATABASE_URL", "REDIS_URL", "LOG_FORMAT")}
    return {**inherited, **env}


def test_gunicorn_accepts_the_config_and_loads_the_app(tmp_path):
    result = subprocess.run(
        [os.path.join(VENV_BIN, "gunicorn"), "--check-config", "-c",
         os.path.join(DEPLOY, "gunicorn.conf.py"), "wsgi:app"],
        cwd=ROOT, env=_deploy_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gunicorn_config_reads_its_settings_from_the_environment(tmp_path):
    probe = ("import runpy, json; s = runpy.run_path('deploy/gunicorn.conf.py'); "
             "print(json.dumps({k: s[k] for k in ('bind', 'workers', 'timeout', "
             "'worker_tmp_dir', 'forwarded_allow_ips', 'accesslog')}))")
    env = _deploy_env(tmp_path, GUNICORN_BIND="127.0.0.1:9001,127.0.0.1:9002",
                      GUNICORN_WORKERS="3", GUNICORN_TIMEOUT="77",
                      FORWARDED_ALLOW_IPS="10.0.0.5")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings == {"bind": ["127.0.0.1:9001", "127.0.0.1:9002"], "workers": 3,
                        "timeout": 77, "worker_tmp_dir": "/dev/shm",
                        "forwarded_allow_ips": "10.0.0.5", "accesslog": None}


def test_gunicorn_config_empties_the_metrics_folder_and_marks_dead_workers(tmp_path):
    import runpy

    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"stale")
    env_before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        settings = runpy.run_path(os.path.join(DEPLOY, "gunicorn.conf.py"))
        settings["on_starting"](None)
        assert list(folder.iterdir()) == []
        (folder / "gauge_livesum_4242.db").write_bytes(b"x")

        class Worker:
            pid = 4242

        settings["child_exit"](None, Worker())  # with or without prometheus_client
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            pass
        else:
            assert not (folder / "gauge_livesum_4242.db").exists()
        settings["on_exit"](None)
        assert not folder.exists()
    finally:
        if env_before is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = env_before


# --- systemd ---------------------------------------------------------------------------------

def test_units_run_programs_that_exist_in_the_venv_layout(tmp_path):
    env = {"CELERY_CONCURRENCY": "2"}
    for unit in UNITS:
        parsed = read_unit(unit)
        service = parsed["Service"]
        assert service["WorkingDirectory"] == APP_DIR
        assert service["EnvironmentFile"] == ENV_FILE
        assert service["User"] == "alliance"
        assert parsed["Install"]["WantedBy"] == "multi-user.target"
        argv = command(unit, env=env, state_dir=str(tmp_path), instance="1")
        assert argv[0].startswith(os.path.join(ROOT, ".venv", "bin") + os.sep)
        assert os.access(argv[0], os.X_OK), argv[0]
        for word in argv[1:]:
            if word.startswith(ROOT):
                assert os.path.exists(word), word
    web = command("alliance-web.service", env=env, state_dir=str(tmp_path))
    assert web[1:] == ["--config", os.path.join(DEPLOY, "gunicorn.conf.py"), "wsgi:app"]
    worker = command("alliance-worker@.service", env=env, state_dir=str(tmp_path), instance="7")
    assert worker[1:4] == ["-A", "workers.celery_app", "worker"]
    assert "--concurrency=2" in worker and any(w.startswith("--hostname=alliance-7@")
                                               for w in worker)
    beat = command("alliance-beat.service", env=env, state_dir=str(tmp_path))
    assert beat[1:4] == ["-A", "workers.celery_app", "beat"]
    assert f"--schedule={tmp_path}/celerybeat-schedule" in beat


def test_there_is_exactly_one_beat_unit_and_it_is_not_a_template():
    units = sorted(os.listdir(os.path.join(DEPLOY, "systemd")))
    assert units == sorted(UNITS)
    beats = [u for u in units if " beat" in read_unit(u)["Service"]["ExecStart"]]
    assert beats == ["alliance-beat.service"]
    assert "exactly one" in open(os.path.join(DEPLOY, "systemd", beats[0])).read().lower()
    # The workers are the templated unit, and none of them embeds a beat (--beat / -B).
    worker = read_unit("alliance-worker@.service")["Service"]["ExecStart"].split()
    assert "--beat" not in worker and "-B" not in worker


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not here")
def test_systemd_analyze_verifies_the_units(tmp_path):
    """systemd's own parser, on copies whose paths point at this checkout (it checks that
    each ExecStart program exists and is executable)."""
    env_file = tmp_path / "alliance.env"
    shutil.copy(ENV_EXAMPLE, env_file)
    for unit in UNITS:
        text = open(os.path.join(DEPLOY, "systemd", unit)).read()
        text = text.replace(APP_DIR, ROOT).replace(ENV_FILE, str(env_file))
        (tmp_path / unit).write_text(text)
    paths = [str(tmp_path / u.replace("@.", "@1.")) for u in UNITS]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths],
                            capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines()
            if "alliance" in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


# --- nginx ------------------------------------------------------------------------------------

def _nginx() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(path):
        raise RuntimeError("nginx is not installed (make test installs it as root: "
                           "apt-get install nginx)")
    return path


def _self_signed_cert(folder) -> tuple[str, str]:
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


def _rewrite(text: str, pattern: str, replacement: str, count: int = 1) -> str:
    new, n = re.subn(pattern, replacement, text)
    assert n == count, f"deploy/nginx/alliance.conf: expected {count} match(es) of {pattern!r}"
    return new


def nginx_config(folder, *, http_port: int, https_port: int, upstream_port: int) -> str:
    """deploy/nginx/alliance.conf with its ports, certificate, static folder and upstream
    moved onto loopback and `folder`, inside a minimal main nginx.conf; returns its path."""
    cert, key = _self_signed_cert(folder)
    site = open(NGINX_SITE).read()
    site = _rewrite(site, r"listen \[::\]:\d+[^;]*;", "", count=2)
    site = _rewrite(site, r"listen 80;", f"listen 127.0.0.1:{http_port};")
    site = _rewrite(site, r"listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    site = _rewrite(site, r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};")
    site = _rewrite(site, r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};")
    site = _rewrite(site, r"alias /srv/alliance/static/;", f"alias {ROOT}/static/;")
    site = _rewrite(site, r"server 127\.0\.0\.1:8000", f"server 127.0.0.1:{upstream_port}")
    site = _rewrite(site, r"root /var/www/letsencrypt;", f"root {folder}/acme;")
    (folder / "alliance.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {folder}/{kind}_temp;"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the temp folder
    main = (f"{user}worker_processes 1;\npid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    include /etc/nginx/mime.types;\n"
            f"    default_type application/octet-stream;\n"
            f"    access_log {folder}/access.log;\n{temp}\n"
            f"    include {folder}/alliance.conf;\n}}\n")
    path = folder / "nginx.conf"
    path.write_text(main)
    return str(path)


def test_nginx_accepts_the_site(tmp_path):
    conf = nginx_config(tmp_path, http_port=free_port(), https_port=free_port(),
                        upstream_port=free_port())
    result = subprocess.run([_nginx(), "-t", "-p", str(tmp_path), "-c", conf,
                             "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", text).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[unit.lower()]


def test_nginx_body_limit_matches_max_content_length_and_headers_match_proxy_fix():
    site = open(NGINX_SITE).read()
    limits = re.findall(r"client_max_body_size\s+(\S+);", site)
    assert [_size(v) for v in limits] == [Config.MAX_CONTENT_LENGTH]
    # ProxyFix(x_for, x_proto, x_host) reads exactly these; set once, for every location.
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert len(re.findall(rf"proxy_set_header {header} ", site)) == 1, header
    assert "$proxy_add_x_forwarded_for" in site


class SourceAddressAdapter(HTTPAdapter):
    """Connect from a chosen loopback address (the 'client' seen by nginx)."""

    def __init__(self, address: str, **kwargs):
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _session(address: str, cert: str) -> requests.Session:
    session = requests.Session()
    session.mount("https://", SourceAddressAdapter(address))
    session.mount("http://", SourceAddressAdapter(address))
    session.verify = cert
    session.trust_env = False  # no proxy or CA bundle from the environment on loopback
    return session


def _csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


ADMIN_EMAIL = "ops@alliance.test"
ADMIN_PASSWORD = "Harbour-Lantern-Quartz-8841"


@pytest.fixture
def proxied_platform(tmp_path):
    """The production set-up on loopback: `flask db upgrade` and `create-admin` as docs/deploy.md
    says, gunicorn from alliance-web.service's ExecStart, nginx with the deploy site."""
    gunicorn_port, http_port, https_port = free_port(), free_port(), free_port()
    env = _deploy_env(tmp_path, GUNICORN_BIND=f"127.0.0.1:{gunicorn_port}",
                      GUNICORN_WORKERS="1", SIGNIN_LIMIT_ACCOUNT="2 per 15 minutes")
    flask = [os.path.join(VENV_BIN, "flask"), "--app", "wsgi"]
    for args, stdin in ((["db", "upgrade"], None),
                        (["alliance", "create-admin", ADMIN_EMAIL, "--password-stdin"],
                         ADMIN_PASSWORD + "\n")):
        result = subprocess.run(flask + args, cwd=ROOT, env=env, input=stdin,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    conf = nginx_config(tmp_path, http_port=http_port, https_port=https_port,
                        upstream_port=gunicorn_port)
    web = UnitProcess("alliance-web.service", env=env, state_dir=str(tmp_path / "state"),
                      logfile=str(tmp_path / "gunicorn.log")).start()
    nginx = subprocess.Popen([_nginx(), "-p", str(tmp_path), "-c", conf, "-e",
                              str(tmp_path / "error.log"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        web.wait_for_port(gunicorn_port)
        wait_for_port(https_port)
        yield {"https": f"https://127.0.0.1:{https_port}", "http": f"http://127.0.0.1:{http_port}",
               "https_port": https_port, "cert": str(tmp_path / "cert.pem"),
               "db": str(tmp_path / "alliance.db"), "web": web}
    finally:
        nginx.terminate()
        nginx.wait(10)
        web.stop()


def test_through_nginx_the_app_sees_https_and_the_clients_own_address(proxied_platform):
    p = proxied_platform
    base = p["https"]
    client = _session("127.0.0.2", p["cert"])  # nginx sees 127.0.0.2; gunicorn sees 127.0.0.1

    # Plain HTTP is sent to HTTPS by nginx.
    r = client.get(p["http"] + "/notes/?q=x", allow_redirects=False)
    assert r.status_code == 301 and r.headers["Location"].startswith("https://127.0.0.1/notes/")

    # Static files come from nginx (no app security headers), pages from the app.
    r = client.get(base + "/static/css/app.css")
    assert r.status_code == 200 and r.content == open(f"{ROOT}/static/css/app.css", "rb").read()
    assert "Content-Security-Policy" not in r.headers
    page = client.get(base + "/auth/sign-in")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers

    # The app sees HTTPS: Flask-WTF checks the Referer's scheme, host and port on secure
    # requests only, so an http:// Referer is refused and the right https:// one accepted.
    token = _csrf_token(page.text)
    form = {"csrf_token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    r = client.post(base + "/auth/sign-in", data=form, allow_redirects=False,
                    headers={"Referer": f"http://127.0.0.1:{p['https_port']}/auth/sign-in"})
    assert r.status_code == 400, r.text[:500]
    r = client.post(base + "/auth/sign-in", data=form, allow_redirects=False,
                    headers={"Referer": base + "/auth/sign-in"})
    assert r.status_code == 302, r.text[:500]
    assert "Secure" in r.headers["Set-Cookie"]  # production cookies, sent back over HTTPS
    assert ADMIN_EMAIL in client.get(base + "/account").text

    # The app sees the client's address, not nginx's and not one the client made up: the
    # per-account lockout is audited with the address ProxyFix took from nginx's header.
    stranger = _session("127.0.0.2", p["cert"])
    page = stranger.get(base + "/auth/sign-in")
    form = {"csrf_token": _csrf_token(page.text), "email": "nobody@alliance.test",
            "password": "wrong-wrong-wrong"}
    statuses = [stranger.post(base + "/auth/sign-in", data=form, allow_redirects=False,
                              headers={"Referer": base + "/auth/sign-in",
                                       "X-Forwarded-For": "203.0.113.66"}).status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429]
    with sqlite3.connect(p["db"]) as conn:
        rows = conn.execute("SELECT details FROM audit_events WHERE action = 'signin.lockout'"
                            ).fetchall()
    assert [json.loads(d)["ip"] for (d,) in rows] == ["127.0.0.2"]

    # Bodies over client_max_body_size are refused by nginx before they reach gunicorn.
    context = ssl.create_default_context(cafile=p["cert"])
    conn = http.client.HTTPSConnection("127.0.0.1", p["https_port"], context=context,
                                       timeout=30)
    conn.putrequest("POST", "/auth/sign-in")
    conn.putheader("Content-Length", str(Config.MAX_CONTENT_LENGTH + 1))
    conn.putheader("Content-Type", "application/octet-stream")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413 and response.getheader("Content-Security-Policy") is None
    conn.close()

    # /metrics: refused by nginx to other addresses, passed to the app from allowed ones.
    r = client.get(base + "/metrics")
    assert r.status_code == 403 and "Content-Security-Policy" not in r.headers
    r = _session("127.0.0.1", p["cert"]).get(base + "/metrics")
    assert "Content-Security-Policy" in r.headers or r.status_code == 200, r.status_code

    # The app logs requests itself: gunicorn's access log (`"GET /account HTTP/1.0" 302`)
    # is off.
    assert '"GET /account HTTP/' not in p["web"].log()
