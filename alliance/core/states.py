"""The platform's own vocabularies: the states and kinds its rows take, one StrEnum each.
A member compares equal to its text (`MembershipState.ACTIVE == "active"`), so queries,
forms and templates use the members; the models build their CHECK constraints from the same
enums (`one_of`), so a value cannot be added in one place and forgotten in the other."""
from enum import StrEnum

from sqlalchemy import CheckConstraint


class MembershipState(StrEnum):
    """DESIGN.md's membership state machine."""
    REQUESTED = "requested"
    INVITED = "invited"
    ACTIVE = "active"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    LEFT = "left"
    REMOVED = "removed"


class OrgStatus(StrEnum):
    """An organisation is pending until a platform admin vets it."""
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Role(StrEnum):
    """A user's role in their organisation."""
    MEMBER = "member"
    ORG_ADMIN = "org_admin"


class JoinPolicy(StrEnum):
    OPEN = "open"
    APPROVAL = "approval"
    INVITE = "invite"


class Frequency(StrEnum):
    """How often a member gets a digest."""
    OFF = "off"
    DAILY = "daily"
    WEEKLY = "weekly"


class LedgerState(StrEnum):
    """A digest or alert delivery in the ledger."""
    PENDING = "pending"
    SENT = "sent"
    EMPTY = "empty"
    SKIPPED = "skipped"
    FAILED = "failed"
    FOLDED = "folded"


def one_of(column: str, enum: type[StrEnum], name: str | None = None) -> CheckConstraint:
    """CHECK (column IN (...every member, in order...)), named after the column."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name or column)
