"""The beat schedule. Run exactly one beat per deployment; every task it sends is safe to run
twice anyway (outbox rows are claimed before they run)."""


def beat_schedule(config) -> dict:
    return {
        "relay-outbox": {
            "task": "alliance.outbox.relay",
            "schedule": config["OUTBOX_RELAY_SECONDS"],
            # A relay that waited in a queue while Redis was down is stale; the next one will do.
            "options": {"expires": max(5.0, config["OUTBOX_RELAY_SECONDS"] * 3)},
        },
    }
