"""CyberPeace Alliance: the application factory. It only wires; it never creates tables,
migrates, prompts or calls the network."""
import importlib
import logging
import os
import secrets

from flask import Flask

from config import BASE_DIR, CONFIGS, INSTANCE_DIR

log = logging.getLogger(__name__)
# The form fields that take a file upload (the bundle upload); any other sent as a file is
# refused before a form reads it.
FILE_FIELDS = frozenset({"bundle_file"})


def create_app(config: str | type | dict | None = None) -> Flask:
    """Build the app. config: a name from config.CONFIGS ("development", "testing",
    "production"), a config class, or a dict of overrides on top of ALLIANCE_ENV's class."""
    app = Flask(__name__, instance_path=INSTANCE_DIR,
                template_folder=os.path.join(BASE_DIR, "templates"),
                static_folder=os.path.join(BASE_DIR, "static"))
    configure_config(app, config)
    configure_logging(app)
    configure_metrics(app)
    configure_extensions(app)
    configure_celery(app)
    configure_outbox(app)
    configure_blueprints(app)
    configure_templates(app)
    configure_request_hooks(app)
    configure_proxy(app)
    configure_errors(app)
    configure_cli(app)
    return app


def configure_config(app: Flask, config) -> None:
    overrides = {}
    if isinstance(config, dict):
        overrides, config = config, None
    if config is None or isinstance(config, str):
        name = config or os.environ.get("ALLIANCE_ENV", "development")
        if name not in CONFIGS:
            raise RuntimeError(f"ALLIANCE_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")
        config = CONFIGS[name]
    app.config.from_object(config)
    app.config.update(overrides)
    if app.config.get("INSTANCE_PATH"):
        app.instance_path = app.config["INSTANCE_PATH"]
    app.config["ENV_NAME"] = next((n for n, c in CONFIGS.items() if c is config), "custom")
    if not app.config.get("SECRET_KEY"):
        if app.config.get("SESSION_COOKIE_SECURE"):  # production
            raise RuntimeError("SECRET_KEY is not set: production refuses to start without one. "
                               "Set it to a long random value (python -c 'import secrets; "
                               "print(secrets.token_hex(32))').")
        app.config["SECRET_KEY"] = _instance_secret_key(app)
    elif app.config.get("SESSION_COOKIE_SECURE") and _weak_secret(app.config["SECRET_KEY"]):
        # Anyone who read deploy/alliance.env.example could sign a session cookie as any user.
        raise RuntimeError("SECRET_KEY is a placeholder or too short: production refuses to "
                           f"start with it. Use at least {MIN_SECRET_LENGTH} random characters "
                           "(python -c 'import secrets; print(secrets.token_hex(32))').")
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    for prefix in ("postgres://", "postgresql://"):
        if uri.startswith(prefix):
            uri = "postgresql+psycopg://" + uri[len(prefix):]
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    if uri.startswith("postgresql"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _postgresql_options(
            app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///"):]) or ".", exist_ok=True)
    redis_url = app.config.get("REDIS_URL")
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    app.config.setdefault("CELERY", _celery_settings(app))


def _postgresql_options(options: dict) -> dict:
    """JIT compilation off for the app's connections (a startup parameter, so every pooled
    connection has it). A TAXII page's plan walks the keyset index and stops after a page,
    but its estimated cost (the whole walk) is far above jit_above_cost, so PostgreSQL would
    spend longer compiling the query than running it (bench/scale.py measures the pages)."""
    connect_args = dict(options.get("connect_args") or {})
    extra = connect_args.get("options", "")
    if "jit=" not in extra:
        connect_args["options"] = f"{extra} -c jit=off".strip()
    return {**options, "connect_args": connect_args}


def _instance_secret_key(app: Flask) -> str:
    """Development only: generate a key once and keep it in instance/secret_key."""
    path = os.path.join(app.instance_path, "secret_key")
    os.makedirs(app.instance_path, exist_ok=True)
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    with open(path) as f:
        return f.read().strip()


def _celery_settings(app: Flask) -> dict:
    from alliance.outbox.services import DISPATCH_TASK, time_limits

    redis_url = app.config.get("REDIS_URL")
    timeout = app.config["OUTBOX_PUBLISH_TIMEOUT"]
    claim = app.config["OUTBOX_CLAIM_SECONDS"]
    soft_limit, time_limit = time_limits(claim)
    visibility = app.config["CELERY_VISIBILITY_TIMEOUT"]
    # The invariant config.py documents: a run ends before its claim's lease, and Redis hands
    # an unacknowledged task to another worker only after both (and after any retry countdown).
    if not 0 < soft_limit < time_limit < claim:
        raise RuntimeError(f"OUTBOX_CLAIM_SECONDS must be positive, not {claim!r}")
    retry_max = app.config["OUTBOX_RETRY_MAX_SECONDS"]
    if redis_url and not (visibility > claim and visibility > retry_max):
        raise RuntimeError(
            f"CELERY_VISIBILITY_TIMEOUT ({visibility:g}s) must be longer than "
            f"OUTBOX_CLAIM_SECONDS ({claim:g}s) and OUTBOX_RETRY_MAX_SECONDS ({retry_max:g}s): "
            "Redis would hand an unacknowledged task to a second worker while the first one "
            "still runs or holds it")
    if redis_url:
        broker, options = redis_url, {
            # Longer than the longest run (and retry countdown), so an acks_late task is
            # not redelivered early; a task of a worker that died is redelivered after it.
            "visibility_timeout": visibility,
            "socket_connect_timeout": timeout,
            "socket_timeout": 5 * timeout,
        }
    else:
        # No Redis: kombu's filesystem transport, shared by web, worker and beat on one machine.
        folder = os.path.join(app.instance_path, "broker")
        for sub in ("queue", "processed", "control"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        broker, options = "filesystem://", {
            "data_folder_in": os.path.join(folder, "queue"),
            "data_folder_out": os.path.join(folder, "queue"),
            "processed_folder": os.path.join(folder, "processed"),
            "control_folder": os.path.join(folder, "control"),
            "store_processed": False,
        }
    return {
        "broker_url": broker,
        "broker_transport_options": options,
        "broker_connection_timeout": timeout,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The dispatch task's time limits follow this app's claim lease (config.py).
        "task_annotations": {DISPATCH_TASK: {"soft_time_limit": soft_limit,
                                             "time_limit": time_limit}},
        "task_default_queue": "alliance",
        "worker_hijack_root_logger": False,
    }


def configure_logging(app: Flask) -> None:
    """LOG_FORMAT / LOG_LEVEL on the root logger, request ids and the access log; first, so
    that everything after it logs that way and its hooks run before (and after) all others."""
    from alliance.ops.logs import init_app

    init_app(app)


def configure_metrics(app: Flask) -> None:
    """Request count and latency for /metrics; METRICS_ALLOW checked here, at start."""
    from alliance.ops.metrics import init_app

    init_app(app)


def configure_extensions(app: Flask) -> None:
    from alliance.auth.services import load_user
    from alliance.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(BASE_DIR, "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Sign in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            _tune_sqlite(db.engine)


MIN_SECRET_LENGTH = 32


def _weak_secret(key) -> bool:
    text = key.decode("latin-1") if isinstance(key, bytes) else str(key)
    return len(text) < MIN_SECRET_LENGTH or "change-me" in text.lower()


def _tune_sqlite(engine) -> None:
    """Foreign keys on, and a busy timeout so web, worker and beat can share the file."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        # Write-ahead log: the web process and the workers read while one of them writes
        # (the mode is kept in the database file; an in-memory database ignores it).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


# The modules that define Celery tasks, all of them: a task exists when it is listed here
# (the worker imports them at start, `include`; the web process to know their options).
TASK_MODULES = ("alliance.outbox.tasks", "alliance.digests.tasks")


def configure_celery(app: Flask) -> None:
    from alliance.extensions import celery_init_app

    celery = celery_init_app(app)
    # Every model mapped before a task's first query (relationships name them by string).
    import alliance.apikeys.models  # noqa: F401
    import alliance.notes.models  # noqa: F401
    import alliance.taxii.models  # noqa: F401

    celery.conf.include = list(TASK_MODULES)
    for module in TASK_MODULES:
        importlib.import_module(module)


def configure_outbox(app: Flask) -> None:
    """Every outbox kind the code enqueues and what runs it, registered in this one place
    (the web app, the CLI and the worker all come through here: workers/celery_app.py), and
    the signals one slice sends and another acts on. Importing a module registers nothing;
    enqueue() refuses a kind that is not registered here."""
    from alliance.auth.services import HANDLERS as AUTH_HANDLERS
    from alliance.digests.handlers import HANDLERS as DIGEST_HANDLERS
    from alliance.digests.handlers import connect_signals as connect_digest_signals
    from alliance.mail.services import HANDLERS as MAIL_HANDLERS
    from alliance.outbox.services import register_handlers

    register_handlers(app, AUTH_HANDLERS, MAIL_HANDLERS, DIGEST_HANDLERS)
    connect_digest_signals()  # notes.events.note_posted -> a watch scan


def configure_blueprints(app: Flask) -> None:
    from alliance.alliances.views import bp as alliances_bp
    from alliance.apikeys.views import bp as apikeys_bp
    from alliance.audit.views import bp as audit_bp
    from alliance.auth.views import bp as auth_bp
    from alliance.core.views import bp as core_bp
    from alliance.dashboard.views import bp as dashboard_bp
    from alliance.digests.views import bp as digests_bp
    from alliance.notes.compose_views import bp as compose_bp
    from alliance.notes.feed_views import bp as feeds_bp
    from alliance.notes.views import bp as notes_bp
    from alliance.notes.views import public_bp as insights_bp
    from alliance.ops.maildir import bp as mail_bp
    from alliance.ops.views import bp as ops_bp
    from alliance.orgs.views import bp as orgs_bp
    from alliance.taxii.views import bp as taxii_bp
    from alliance.taxii.views import register_errors as register_taxii_errors

    app.register_blueprint(core_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(ops_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(orgs_bp)
    app.register_blueprint(apikeys_bp)
    app.register_blueprint(alliances_bp, url_prefix="/alliances")
    app.register_blueprint(audit_bp)
    app.register_blueprint(digests_bp, url_prefix="/digests")
    app.register_blueprint(mail_bp, url_prefix="/admin/mail")
    app.register_blueprint(notes_bp, url_prefix="/notes")
    app.register_blueprint(feeds_bp, url_prefix="/notes")
    app.register_blueprint(compose_bp, url_prefix="/notes")
    app.register_blueprint(insights_bp)
    app.register_blueprint(taxii_bp)
    register_taxii_errors(app)


def configure_templates(app: Flask) -> None:
    from alliance.core.views import register_template_helpers

    # Autoescape every template, the .txt mail parts included: nothing user-typed is markup.
    app.jinja_env.autoescape = True
    register_template_helpers(app)


def configure_proxy(app: Flask) -> None:
    """Behind N reverse proxies, trust N hops of X-Forwarded-* (client address for the
    sign-in limits, scheme and host); with none configured, trust none."""
    hops = app.config["PROXY_FIX_HOPS"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Flask's documented way to wrap its WSGI app; typeshed sees a method being replaced.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def configure_request_hooks(app: Flask) -> None:
    from flask import abort, request

    from alliance.core.security import add_security_headers
    from alliance.outbox.services import publish_after_request

    @app.before_request
    def _no_nul():
        # A NUL in an address or a query value is never meaningful here, and PostgreSQL
        # refuses it in text outright (a 500 wherever it reached a query). Such a path
        # names nothing (404); such a query value is malformed (400).
        if "\x00" in request.path:
            abort(404)
        if any("\x00" in key or "\x00" in value
               for key, value in request.args.items(multi=True)):
            abort(400, "The address contains a NUL character; remove it and try again.")

    @app.before_request
    def _forms_only():
        # The web pages take forms. Flask-WTF would also read a JSON body as a form, and a
        # multipart body may send any field as a file: the validators then meet a number, a
        # dict or an upload where they expect text (a 500). TAXII (/taxii2/) has its own
        # rules.
        from alliance.taxii.views import is_taxii_request

        if request.method not in ("POST", "PUT", "PATCH", "DELETE") or is_taxii_request():
            return
        if request.is_json:
            abort(415, "This address takes a form, not JSON. Machines use the TAXII 2.1 "
                       "API at /taxii2/.")
        stray = sorted(set(request.files) - FILE_FIELDS)
        if stray:
            abort(400, f"The field {stray[0][:40]!r} was sent as a file; it takes text.")

    @app.after_request
    def _after(response):
        try:
            publish_after_request()
        except Exception:  # the relay will pick the rows up; a response is never lost to it
            log.exception("outbox: publishing after the request failed")
        return add_security_headers(app, response)


def configure_errors(app: Flask) -> None:
    from alliance.core.views import register_error_handlers

    register_error_handlers(app)


def configure_cli(app: Flask) -> None:
    from alliance.cli import alliance_cli

    app.cli.add_command(alliance_cli)
