"""The limits on posted STIX content. alliance.stix.validation takes them as an argument: its
callers (the upload page, TAXII, the CLI) build them from the app's configuration with
StixLimits.from_config, so the STIX code itself reads no configuration."""
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StixLimits:
    """What one post may hold (config.py documents each STIX_MAX_* setting). The defaults are
    config.py's, for code that checks STIX without an app (tests, benchmarks)."""

    max_bytes: int = 10 * 1024 * 1024
    max_objects: int = 25_000
    max_depth: int = 48
    max_string: int = 1024 * 1024
    # Characters of indicator patterns per post that stix2's own pattern parser may read.
    max_slow_patterns: int = 256 * 1024

    @classmethod
    def from_config(cls, config: Mapping) -> "StixLimits":
        """The limits an app is configured with (its STIX_MAX_* settings)."""
        return cls(max_bytes=config["STIX_MAX_BYTES"], max_objects=config["STIX_MAX_OBJECTS"],
                   max_depth=config["STIX_MAX_DEPTH"], max_string=config["STIX_MAX_STRING"],
                   max_slow_patterns=config["STIX_MAX_SLOW_PATTERNS"])


DEFAULT_LIMITS = StixLimits()


@dataclass(slots=True)
class PatternBudget:
    """The characters of pattern that stix2's full pattern parser may still read for one post:
    it reads slowly enough that a post of long patterns it must parse would hold a worker for
    minutes, so each indicator that needs it uses up its pattern's length."""

    limit: int
    left: int = field(init=False)

    def __post_init__(self) -> None:
        self.left = self.limit

    def spend(self, pattern: str) -> bool:
        """Use up the pattern's length; False once the post has spent more than its limit."""
        self.left -= len(pattern)
        return self.left >= 0
