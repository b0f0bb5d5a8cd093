"""Outbox handlers are registered explicitly, in one place (alliance.configure_outbox, which
the web app, the CLI and the worker all run through create_app), never by importing a
module: every kind the code enqueues has a handler there, and a kind without one is refused
when it is enqueued."""
import ast
from pathlib import Path

import pytest
from flask import Flask

from alliance.outbox import services
from alliance.outbox.services import Handler, UnknownKind, register_handlers

PACKAGE = Path(__file__).resolve().parents[2] / "alliance"


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "string" assignments (the kinds some slices name)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _kinds_in(source: str, where: str) -> set[str]:
    """The outbox kinds a module writes: the first argument of enqueue(...) calls, and the
    "kind" of the rows it inserts itself (a dict literal with "kind" and "payload" keys)."""
    tree = ast.parse(source)
    constants = _constants(tree)
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and (
                getattr(node.func, "id", None) == "enqueue"
                or getattr(node.func, "attr", None) == "enqueue"):
            first = node.args[0]
            if isinstance(first, ast.Constant):
                kinds.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                kinds.add(constants[first.id])
            else:  # a kind the scanner cannot resolve would hide from this test
                pytest.fail(f"{where}:{node.lineno}: enqueue() with a kind that is not a "
                            "string literal or a module constant")
        if isinstance(node, ast.Dict):
            keys = {k.value: v for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant)}
            if "payload" in keys and isinstance(keys.get("kind"), ast.Constant):
                kinds.add(keys["kind"].value)
    return kinds


def _enqueued_kinds() -> set[str]:
    kinds = set()
    for path in PACKAGE.rglob("*.py"):
        kinds |= _kinds_in(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    return kinds


def test_the_app_registers_a_handler_for_every_kind_the_code_enqueues(app):
    enqueued = _enqueued_kinds()
    # The scanner finds what it must (or this test would pass by finding nothing).
    assert {"mail", "digest", "alert", "watch-scan", "digest-test",
            "auth.password_reset", "auth.sign_in_link"} <= enqueued
    registered = app.extensions["outbox_handlers"]
    assert enqueued - set(registered) == set()
    assert all(isinstance(spec, Handler) for spec in registered.values())


def test_the_scanner_sees_an_enqueued_kind_nobody_registers(app):
    source = ('KIND = "reports.weekly"\n'
              "def f():\n    enqueue(KIND, x=1)\n    outbox.enqueue('reports.daily')\n")
    assert _kinds_in(source, "example.py") == {"reports.weekly", "reports.daily"}
    assert not {"reports.weekly", "reports.daily"} & set(app.extensions["outbox_handlers"])


def test_only_the_application_factory_registers_handlers():
    """Importing a slice registers nothing: register_handlers is called in one place."""
    defined_in = PACKAGE / "outbox" / "services.py"
    callers = sorted(str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
                     if path != defined_in and "register_handlers(" in path.read_text())
    assert callers == ["alliance/__init__.py"]


def test_an_app_that_registered_nothing_refuses_every_kind():
    bare = Flask("bare")
    with bare.app_context():
        with pytest.raises(UnknownKind, match="no handler is registered for outbox kind 'mail'"):
            services.enqueue("mail", to="a@example.com")


def test_two_slices_claiming_one_kind_fail_at_start():
    bare = Flask("bare")
    register_handlers(bare, {"mail": Handler(lambda message: None)})
    with pytest.raises(RuntimeError, match="'mail' is registered twice"):
        register_handlers(bare, {"mail": Handler(lambda message: None)})
    with pytest.raises(TypeError, match="register a Handler"):
        register_handlers(bare, {"other": lambda message: None})


def test_the_notes_slice_does_not_import_the_digests_slice():
    """notes tells digests about a posted note through notes.events.note_posted, which
    digests connects in its registration (digests.handlers.connect_signals)."""
    offenders = []
    for path in (PACKAGE / "notes").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}:{node.lineno}" for name in names
                          if name.startswith("alliance.digests")]
    assert offenders == []


def test_posting_a_note_queues_a_watch_scan_through_the_signal(coordinator, alliance):
    from sqlalchemy import select

    from alliance.extensions import db
    from alliance.outbox.models import OutboxMessage
    from tests.digests.helpers import post

    note = post(coordinator, "Watched?", "GREEN", [alliance])
    quiet = post(coordinator, "Imported quietly", "GREEN", [alliance], alerts=False)
    scans = db.session.scalars(select(OutboxMessage.payload).where(
        OutboxMessage.kind == "watch-scan")).all()
    assert scans == [{"note_id": note.id}]
    assert quiet.id != note.id
