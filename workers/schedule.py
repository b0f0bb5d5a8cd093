"""The beat schedule. Run exactly one beat per deployment; every task it sends is safe to run
twice anyway (outbox rows are claimed before they run, digests have a unique ledger key)."""


def beat_schedule(config) -> dict:
    return {
        "relay-outbox": {
            "task": "alliance.outbox.relay",
            "schedule": config["OUTBOX_RELAY_SECONDS"],
            # A relay that waited in a queue while Redis was down is stale; the next one will do.
            "options": {"expires": max(5.0, config["OUTBOX_RELAY_SECONDS"] * 3)},
        },
        "find-due-digests": {
            "task": "alliance.digests.find_due",
            "schedule": config["DIGEST_SCAN_SECONDS"],
            # Two cycles queued behind each other would only find nothing the second time.
            "options": {"expires": max(10.0, config["DIGEST_SCAN_SECONDS"])},
        },
    }
