from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, and_, exists
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from alliance.core.models import UTCDateTime, utcnow
from alliance.core.states import OrgStatus, Role, one_of
from alliance.extensions import Model
from alliance.orgs.models import Organisation


class User(UserMixin, Model):
    """A person; belongs to exactly one organisation (platform admins may have none)."""

    __tablename__ = "users"
    __table_args__ = (
        one_of("role", Role),
        CheckConstraint("organisation_id IS NOT NULL OR is_admin", name="org_or_admin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="member")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on sign-out, password change and deactivation: every session cookie carries the
    # version it was issued with, and the user loader refuses an older one.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation = relationship("Organisation", back_populates="users")

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        return self.deactivated_at is None

    @property
    def is_org_admin(self) -> bool:
        return self.role == "org_admin"

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None

    @hybrid_property
    def can_act(self) -> bool:
        """Verified, active, and in a vetted organisation: may use the member pages. In SQL
        too (`select(User).where(User.can_act)`): the one form of this rule."""
        return (self.is_active and self.is_verified and self.organisation is not None
                and self.organisation.is_approved)

    @can_act.inplace.expression
    @classmethod
    def _can_act_sql(cls):
        org = aliased(Organisation)
        return and_(cls.deactivated_at.is_(None), cls.email_verified_at.is_not(None),
                    exists().where(org.id == cls.organisation_id,
                                   org.status == OrgStatus.APPROVED))

    def __repr__(self):
        return f"<User {self.email}>"
