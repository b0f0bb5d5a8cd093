"""Flask extensions, created unbound; the factory binds them to an app."""
import ipaddress
import json
from typing import TYPE_CHECKING

import click
import orjson
from celery import Celery, Task
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _json_dumps(value) -> str:
    """JSON columns are written with orjson (STIX bodies are most of what is stored); what it
    refuses (integers beyond 64 bits) falls back to the standard library."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _json_loads(text: str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


db = SQLAlchemy(model_class=Base, engine_options={"json_serializer": _json_dumps,
                                                  "json_deserializer": _json_loads})

# What every model subclasses: db.Model, which Flask-SQLAlchemy makes from Base when `db` is
# created. A type checker cannot follow a base class made at run time, so to it a model is
# a subclass of Base, whose typed columns (Mapped[...]) it then checks.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


class LazyMigrate:
    """Flask-Migrate, bound to the app the first time a migration needs it (`flask db ...`,
    flask_migrate.upgrade() in an app context): importing it imports Alembic, a heavy import
    that the web, the workers and every other command do not need. Until then the app
    has a placeholder config (with the migrations folder, which the readiness probe reads)
    and a placeholder `db` command group."""

    def init_app(self, app: Flask, db, directory: str, **kwargs) -> None:
        def bind():
            if isinstance(app.extensions["migrate"], _UnboundMigrateConfig):
                from flask_migrate import Migrate

                # Replaces both placeholders with Flask-Migrate's own config and `db` group.
                Migrate(app, db, directory, **kwargs)
            return app.extensions["migrate"], app.cli.commands["db"]

        app.extensions["migrate"] = _UnboundMigrateConfig(directory, bind)
        app.cli.add_command(_LazyDbGroup(bind))


class _UnboundMigrateConfig:
    def __init__(self, directory: str, bind):
        self.directory = directory
        self._bind = bind

    def __getattr__(self, name):
        return getattr(self._bind()[0], name)


class _LazyDbGroup(click.Group):
    def __init__(self, bind):
        super().__init__("db", help="Perform database migrations.")
        self._bind = bind

    def make_context(self, info_name, args, parent=None, **extra):
        return self._bind()[1].make_context(info_name, args, parent=parent, **extra)


migrate = LazyMigrate()
login_manager = LoginManager()
csrf = CSRFProtect()


def client_network() -> str:
    """The client a per-address limit counts: its address, or for IPv6 its /64 (the least a
    network hands one client, who could send each attempt from another address in it)."""
    address = get_remote_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


limiter = Limiter(key_func=client_network)


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for a Flask app (Flask's documented pattern): every task runs
    inside an application context, and the Celery app is kept in app.extensions."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
