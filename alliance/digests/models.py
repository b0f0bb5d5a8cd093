"""Digest preferences, watch terms and the delivery ledger."""
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alliance.core.models import UTCDateTime, utcnow
from alliance.core.states import Frequency, LedgerState, one_of
from alliance.extensions import Model

WATCH_KINDS = ("value", "cve", "sector", "country", "policy_tag")
LEDGER_STATES = tuple(LedgerState)


class DigestPreference(Model):
    """A user's own digest settings. Without a row, the defaults of their alliances apply
    (alliance.digests.preferences.preferences_of)."""

    __tablename__ = "digest_preferences"
    __table_args__ = (
        one_of("frequency", Frequency),
        CheckConstraint("hour >= 0 AND hour <= 23", name="hour"),
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    frequency: Mapped[str] = mapped_column(String(10))
    weekday: Mapped[int] = mapped_column(Integer, default=0)
    hour: Mapped[int] = mapped_column(Integer, default=8)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Alliance ids the digest covers; None means every alliance of the user's organisation.
    alliance_ids: Mapped[list | None] = mapped_column(JSON)
    alerts: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WatchTerm(Model):
    """A term whose appearance in a readable note mails the user at once (throttled)."""

    __tablename__ = "watch_terms"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "value"),
        CheckConstraint("kind IN ('value', 'cve', 'sector', 'country', 'policy_tag')",
                        name="kind"),
        Index("ix_watch_terms_lookup", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Model):
    """The ledger: one row per (user, period) for digests and per (user, note) for alerts,
    unique, written before the mail is sent, so that nothing is sent twice."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("user_id", "period_key"),
        CheckConstraint("kind IN ('digest', 'alert')", name="kind"),
        one_of("state", LedgerState),
        Index("ix_deliveries_state_created", "state", "created_at"),
        Index("ix_deliveries_user_kind_created", "user_id", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    period_key: Mapped[str] = mapped_column(String(40))
    # For alerts (and alerts folded into the next digest): the note, by id, never loaded here.
    note_id: Mapped[int | None] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"),
                                                index=True)
    watch_term: Mapped[str | None] = mapped_column(String(300))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    items: Mapped[int] = mapped_column(Integer, default=0)
    strictest_tlp: Mapped[str | None] = mapped_column(String(20))
    message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User")
