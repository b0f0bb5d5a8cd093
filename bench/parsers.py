"""The fast paths of STIX validation next to the libraries they stand in for (moved here from
the unit suite, issue 21: the unit tests count the work they skip instead of timing it).

  objects   alliance.stix.fastcheck.check against stix2.parse(allow_custom=True, version
            "2.1"), on every fourth object of the ATT&CK Mobile bundle: the best of
            BENCH_PARSER_ROUNDS (5) runs of each; goal: at least 10x faster.
  patterns  alliance.stix.fastpattern.check against stix2patterns' run_validator, on the
            patterns of the test corpus (tests/data/stix) and 200 generated ones; goal: at
            least 10x faster.

    .venv/bin/python bench/parsers.py
"""
import json
import os
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "data" / "stix"
MOBILE = CORPUS / "valid" / "attack__mobile-attack-17.1.json"
GOAL = 10.0


def _best(fn, items, runs: int) -> float:
    """The best of `runs` passes over the items, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for item in items:
            fn(item)
        times.append(time.perf_counter() - start)
    return min(times)


def _stix2_parse(obj) -> None:
    import stix2

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stix2.parse(obj, allow_custom=True, version="2.1")
    except Exception:  # noqa: S110 (a refusal costs what it costs)
        pass


def _patterns() -> list[str]:
    found = []

    def walk(value):
        if isinstance(value, dict):
            if value.get("type") == "indicator" and isinstance(value.get("pattern"), str):
                found.append(value["pattern"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in sorted(CORPUS.rglob("*.json")):
        try:
            walk(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue
    return found + [f"[ipv4-addr:value = '10.{i % 256}.{i // 256 % 256}.{i * 7 % 256}']"
                    for i in range(200)]


def bench_parsers(rounds: int | None = None) -> list[dict]:
    from stix2patterns.validator import run_validator

    from alliance.stix import fastcheck, fastpattern

    rounds = rounds or int(os.environ.get("BENCH_PARSER_ROUNDS", "5"))
    rows = []
    if MOBILE.exists():
        objects = json.loads(MOBILE.read_bytes())["objects"][::4]
        fast = _best(fastcheck.check, objects, rounds)
        slow = _best(_stix2_parse, objects, max(1, rounds // 2))
        rows.append({"part": "objects", "items": len(objects), "fast_s": round(fast, 4),
                     "library_s": round(slow, 4), "ratio": round(slow / fast, 1)})
    patterns = _patterns()
    fast = _best(fastpattern.check, patterns, rounds)
    slow = _best(lambda p: run_validator(p, "2.1"), patterns, max(1, rounds // 2))
    rows.append({"part": "patterns", "items": len(patterns), "fast_s": round(fast, 4),
                 "library_s": round(slow, 4), "ratio": round(slow / fast, 1)})
    for row in rows:
        library = "stix2.parse" if row["part"] == "objects" else "run_validator"
        print(f"parsers {row['part']:9} {row['items']:>5} items   fast path "
              f"{row['fast_s'] * 1e6 / row['items']:8.1f} us each   {library} "
              f"{row['library_s'] * 1e6 / row['items']:8.1f} us each   = {row['ratio']:.1f}x "
              f"(goal >= {GOAL:.0f}x){'' if row['ratio'] >= GOAL else '   MISSED'}", flush=True)
    return rows


if __name__ == "__main__":
    rows = bench_parsers()
    out = ROOT / "bench" / "results" / f"parsers-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(timespec="seconds"),
                               "cpus": os.cpu_count(), "parsers": rows}, indent=2))
    print(f"results written to {out.relative_to(ROOT)}")
