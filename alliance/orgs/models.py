from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alliance.core.models import UTCDateTime, utcnow
from alliance.core.states import OrgStatus, one_of
from alliance.extensions import Model

ORG_STATUSES = ("pending", "approved", "rejected")


class Organisation(Model):
    """A member organisation. Pending until a platform admin vets it; its STIX identity id is
    stable and is the created_by_ref of everything it posts."""

    __tablename__ = "organisations"
    __table_args__ = (
        one_of("status", OrgStatus),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    sectors: Mapped[list] = mapped_column(JSON, default=list)
    website: Mapped[str | None] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    vetted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stix_id: Mapped[str] = mapped_column(String(64), unique=True)
    stix_identity: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    users = relationship("User", back_populates="organisation", order_by="User.name")

    @property
    def is_approved(self) -> bool:
        return self.status == "approved"

    def __repr__(self):
        return f"<Organisation {self.slug} {self.status}>"


class PendingRegistration(Model):
    """A registration waiting for its address to be confirmed: nothing of it exists (no
    organisation, no account, no name taken) until the link mailed to the address is opened,
    so registering says nothing about which addresses or names are in use. The link carries
    a random token; only its sha256 is kept."""

    __tablename__ = "pending_registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    details: Mapped[dict] = mapped_column(JSON)  # the organisation's and the user's fields
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
