"""Test helpers: counting what a change leaves behind, and reading one element of a page."""
from html.parser import HTMLParser

from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.extensions import db
from alliance.outbox.models import OutboxMessage


def count_events(**where) -> int:
    """Audit events, optionally filtered by column values (action=..., alliance_id=...)."""
    query = select(func.count()).select_from(AuditEvent)
    for column, value in where.items():
        query = query.where(getattr(AuditEvent, column) == value)
    return db.session.scalar(query)


def events(**where) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    for column, value in where.items():
        query = query.where(getattr(AuditEvent, column) == value)
    return db.session.scalars(query).all()


def count_outbox() -> int:
    return db.session.scalar(select(func.count()).select_from(OutboxMessage))


class _ElementText(HTMLParser):
    """Collects the text inside the element with a given id (void elements aside)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self, element_id):
        super().__init__()
        self.element_id, self.depth, self.found, self.parts = element_id, 0, False, []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.element_id:
            self.depth, self.found = 1, True

    def handle_endtag(self, tag):
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def element_text(html: bytes | str, element_id: str) -> str | None:
    """The text of the element with this id in a page, whitespace collapsed; None if absent."""
    parser = _ElementText(element_id)
    parser.feed(html.decode() if isinstance(html, bytes) else html)
    return " ".join(" ".join(parser.parts).split()) if parser.found else None
