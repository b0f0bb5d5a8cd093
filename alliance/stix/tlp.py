"""TLP 2.0 levels, ordered from loosest to strictest. AMBER never implies AMBER+STRICT."""

TLP_LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
TLP_RANK = {level: rank for rank, level in enumerate(TLP_LEVELS)}

