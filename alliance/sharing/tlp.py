"""TLP 2.0 levels, ordered from loosest to strictest. AMBER never implies AMBER+STRICT."""

TLP_LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
TLP_RANK = {level: rank for rank, level in enumerate(TLP_LEVELS)}


def is_stricter(a: str, b: str) -> bool:
    """True when TLP level a is stricter than b."""
    return TLP_RANK[a] > TLP_RANK[b]
