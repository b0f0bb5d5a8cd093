"""What a refused post says: each Problem names the object id, the property and the reason,
and BundleRejected carries them all (with the HTTP status: 413 for a size, else 422)."""
from dataclasses import dataclass

from alliance.core.errors import DomainError


@dataclass
class Problem:
    object_id: str
    property: str
    reason: str

    def __str__(self):
        where = " ".join(p for p in (self.object_id, self.property) if p)
        return f"{where}: {self.reason}" if where else self.reason


class BundleRejected(DomainError):
    """The bundle was refused; problems lists every reason (nothing was stored)."""

    status_code = 422

    def __init__(self, problems: list[Problem], status_code: int = 422):
        self.problems = problems
        self.status_code = status_code
        first = str(problems[0]) if problems else "the bundle was refused"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"The STIX content was refused: {first}{more}.")
