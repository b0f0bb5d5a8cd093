"""Shared by the TAXII conformance and paging tests: the app served over real HTTP on
loopback, API-key authentication for the OASIS taxii2-client, a recorder of every answer the
server gives, and envelopes cut so that references stay resolvable."""
import re
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from graphlib import CycleError, TopologicalSorter

import requests
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

from alliance.extensions import db
from alliance.notes.models import CollectionObject, StixObject
from alliance.stix.references import references
from alliance.taxii.filters import rfc3339
from tests.servers import free_port

TAXII = "application/taxii+json;version=2.1"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # one line per request would flood the output
        pass


@contextmanager
def serving(app):
    """The app on a free loopback port (werkzeug, one thread per request); yields its URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(10)


class BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer <key>` on every request of a taxii2-client connection."""

    def __init__(self, key: str):
        self.key = key

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


@contextmanager
def recording(base_url: str):
    """Every response the live server gives during the block (whoever sent the request:
    taxii2-client or a plain requests session); at the end each must be TAXII JSON."""
    seen = []
    send = requests.Session.send

    def recorded(self, request, **kwargs):
        response = send(self, request, **kwargs)
        if request.url.startswith(base_url):
            seen.append(response)
        return response

    requests.Session.send = recorded
    try:
        yield seen
    finally:
        requests.Session.send = send
    wrong = [(r.request.method, r.url, r.status_code, r.headers.get("Content-Type"))
             for r in seen if r.headers.get("Content-Type") != TAXII]
    assert not wrong, wrong
    assert seen


def chunks_in_reference_order(objects: list[dict], size: int) -> list[list[dict]]:
    """Envelopes of at most `size` objects, each object posted no earlier than what it refers
    to (the poster may only refer to objects in the envelope or already readable). Objects
    that refer to each other (ATT&CK's identity and marking definition) stay together."""
    ids = {o["id"] for o in objects}
    group = {i: i for i in ids}
    while True:
        graph: dict[str, set[str]] = {}
        for obj in objects:
            node = group[obj["id"]]
            graph.setdefault(node, set()).update(
                group[r] for r in references(obj) if r in ids and group[r] != node)
        try:
            order = list(TopologicalSorter(graph).static_order())
        except CycleError as exc:
            cycle = set(exc.args[1])
            merged = min(cycle)
            group = {i: merged if g in cycle else g for i, g in group.items()}
            continue
        break
    members: dict[str, list[dict]] = {}
    for obj in objects:
        members.setdefault(group[obj["id"]], []).append(obj)
    chunks: list[list[dict]] = [[]]
    for node in order:
        if chunks[-1] and len(chunks[-1]) + len(members[node]) > size:
            chunks.append([])
        chunks[-1].extend(members[node])
    return chunks


def version_of(obj: dict) -> str | None:
    return obj.get("modified") or obj.get("created")


def served_with_ids() -> set[str]:
    """The ids of what a collection serves beside notes' objects (alliance.notes.served_with):
    the platform organisations' identities, the TLP 2.0 marking definitions, their extension
    definition and its creator's identity."""
    from alliance.orgs.models import Organisation
    from alliance.stix.markings import (
        tlp2_extension_creator,
        tlp2_extension_definition,
        tlp2_objects,
    )

    return {*db.session.scalars(select(Organisation.stix_id)),
            *(o["id"] for o in tlp2_objects().values()), tlp2_extension_definition()["id"],
            tlp2_extension_creator()["id"]}


def posted_only(objects) -> list:
    """Of served objects (or their ids), those that are no platform object served beside them."""
    platform = served_with_ids()
    return [o for o in objects if (o["id"] if isinstance(o, dict) else o) not in platform]


def stored_dates() -> dict[tuple[str, str], str]:
    """(STIX id, modified) -> the row's real date added in RFC 3339, read fresh: the date
    it entered the (first) alliance collection that holds it, which is unique within that
    collection (a microsecond or so after the row was stored)."""
    db.session.rollback()
    db.session.expire_all()
    rows = db.session.execute(
        select(StixObject.stix_id, StixObject.modified,
               func.coalesce(func.min(CollectionObject.date_added), StixObject.date_added))
        .outerjoin(CollectionObject, CollectionObject.object_id == StixObject.id)
        .group_by(StixObject.id, StixObject.stix_id, StixObject.modified,
                  StixObject.date_added)).all()
    return {(stix_id, modified): rfc3339(_aware(added)) for stix_id, modified, added in rows}


def _aware(value):
    """coalesce() loses the column type: SQLite answers text, both answer naive UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def date_of(obj: dict, dates: dict) -> str:
    return dates[(obj["id"], version_of(obj) or "")]
