from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alliance.core.models import UTCDateTime, utcnow
from alliance.core.states import JoinPolicy, MembershipState, one_of
from alliance.extensions import Model

JOIN_POLICIES = tuple(JoinPolicy)


class Alliance(Model):
    """A trusted sharing community of organisations."""

    __tablename__ = "alliances"
    __table_args__ = (
        one_of("join_policy", JoinPolicy),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    charter: Mapped[str] = mapped_column(Text, default="")
    policy_tags: Mapped[list] = mapped_column(JSON, default=list)
    join_policy: Mapped[str] = mapped_column(String(20), default="approval")
    allowed_tlps: Mapped[list] = mapped_column(JSON, default=list)
    default_tlp: Mapped[str] = mapped_column(String(20), default="AMBER")
    publish_clear_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    # What members get until they choose for themselves (alliance.digests.preferences).
    digest_frequency: Mapped[str] = mapped_column(String(10), default="daily",
                                                  server_default="daily")
    digest_hour: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    memberships = relationship("Membership", back_populates="alliance")
    coordinators = relationship("Coordinator", back_populates="alliance")


class Membership(Model):
    """Organisation <-> alliance, moved only by alliances.services (DESIGN.md state machine)."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("alliance_id", "organisation_id"),
        one_of("state", MembershipState),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alliance_id: Mapped[int] = mapped_column(
        ForeignKey("alliances.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    request_message: Mapped[str | None] = mapped_column(Text)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    charter_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    alliance = relationship("Alliance", back_populates="memberships")
    organisation = relationship("Organisation")

    @hybrid_property
    def is_active(self) -> bool:
        """The organisation is an active member: it reads and posts in the alliance (in SQL
        too: `select(...).where(Membership.is_active)`)."""
        return self.state == MembershipState.ACTIVE


class Coordinator(Model):
    """A user named coordinator of an alliance. Acts as one only while active and while the
    user's organisation is an active member of the alliance."""

    __tablename__ = "alliance_coordinators"
    __table_args__ = (UniqueConstraint("alliance_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alliance_id: Mapped[int] = mapped_column(
        ForeignKey("alliances.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    appointed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    alliance = relationship("Alliance", back_populates="coordinators")
    user = relationship("User")
