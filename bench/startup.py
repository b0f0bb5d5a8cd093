"""The start-up benchmark (issue 22): wall and CPU time of a fresh process running
`flask --app wsgi alliance --help`, the median of BENCH_STARTUP_RUNS (11) runs, next to the
goal of 0.5 s. Also `flask --app wsgi --help`, the app factory alone (`import wsgi`), and the
floor: importing the frameworks every start needs (Flask, SQLAlchemy, Flask-SQLAlchemy,
-Limiter, -WTF, -Login, Celery's app) and nothing of ours.

Each command runs the way a user runs it, in the checkout with the development settings (a
throw-away instance folder), in two ways:
  cached     with a bytecode cache (PYTHONPYCACHEPREFIX, one run first to fill it): what an
             installed deployment or a developer's checkout sees. Compared with the goal.
  uncached   PYTHONDONTWRITEBYTECODE=1: the project's modules are compiled on every start
             (how some sandboxes and CI containers run).
CPU is user + system time of the child process (getrusage of the children). The runs of the
commands are interleaved, so a busy neighbour slows all of them alike; the load average at
the start and the end is saved with the figures.

    .venv/bin/python bench/startup.py               (also part of `make bench`; BENCH_STARTUP=0
                                                     skips it there)
Knobs: BENCH_STARTUP_RUNS (11). Results: bench/results/startup-<timestamp>.json."""
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 0.5
RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "11"))
# The `flask` script beside this Python (as `.venv/bin/flask` is run), else `python -m flask`.
_SCRIPT = Path(sys.executable).with_name("flask")
FLASK = [*([str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "flask"]),
         "--app", "wsgi"]
COMMANDS = {
    "flask --app wsgi alliance --help": FLASK + ["alliance", "--help"],
    "flask --app wsgi --help": FLASK + ["--help"],
    "import wsgi (the app factory)": [sys.executable, "-c", "import wsgi"],
    "floor (the frameworks alone)": [
        sys.executable, "-c", "import celery.app.base, flask.cli, flask_limiter, flask_login, "
                              "flask_sqlalchemy, flask_wtf"],
}
GOAL = "flask --app wsgi alliance --help"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process; it must succeed."""
    cpu, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,  # noqa: S603 (fixed commands)
                            stderr=subprocess.PIPE, text=True, timeout=120)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    return wall, cpu


def _environments(tmp: str) -> dict[str, dict]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("ALLIANCE_ENV", "DATABASE_URL", "REDIS_URL", "FLASK_APP",
                         "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    base.update(ALLIANCE_ENV="development", INSTANCE_PATH=os.path.join(tmp, "instance"),
                PYTHONPATH=str(ROOT))
    return {"cached": dict(base, PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache")),
            "uncached": dict(base, PYTHONDONTWRITEBYTECODE="1")}


def bench_startup(runs: int = RUNS) -> dict:
    tmp = tempfile.mkdtemp(prefix="alliance-bench-startup-")
    try:
        envs = _environments(tmp)
        load_start = [round(x, 2) for x in os.getloadavg()]
        samples = {(mode, name): [] for mode in envs for name in COMMANDS}
        for env in envs.values():  # fills the bytecode cache, the secret key, the database
            for argv in COMMANDS.values():
                _run(argv, env)
        for _ in range(runs):
            for (mode, name), found in samples.items():
                found.append(_run(COMMANDS[name], envs[mode]))
        load_end = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for (mode, name), found in samples.items():
        wall = statistics.median(w for w, _ in found)
        cpu = statistics.median(c for _, c in found)
        rows.append({"command": name, "bytecode": mode, "runs": runs,
                     "wall_p50_s": round(wall, 3), "cpu_p50_s": round(cpu, 3),
                     "wall_min_s": round(min(w for w, _ in found), 3),
                     "cpu_min_s": round(min(c for _, c in found), 3),
                     "wall_vs_goal": round(wall / GOAL_SECONDS, 2),
                     "cpu_vs_goal": round(cpu / GOAL_SECONDS, 2)})
        print(f"startup {name:34} {mode:8}  wall p50 {wall:5.2f} s  CPU p50 {cpu:5.2f} s  "
              f"= {wall / GOAL_SECONDS:4.2f}x / {cpu / GOAL_SECONDS:4.2f}x the "
              f"{GOAL_SECONDS} s goal")
    goal = next(r for r in rows if r["command"] == GOAL and r["bytecode"] == "cached")
    verdict = "met" if goal["wall_p50_s"] < GOAL_SECONDS else "not met"
    print(f"startup goal ({GOAL} under {GOAL_SECONDS} s, bytecode cached): {verdict} "
          f"(wall p50 {goal['wall_p50_s']:.2f} s, CPU p50 {goal['cpu_p50_s']:.2f} s; "
          f"load average {load_start[0]} -> {load_end[0]})")
    return {"goal_seconds": GOAL_SECONDS, "goal_met": verdict == "met",
            "load_start": load_start, "load_end": load_end, "rows": rows}


def main() -> None:
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": os.uname().machine, "cpus": os.cpu_count(),
               "python": sys.version.split()[0], **bench_startup()}
    out = ROOT / "bench" / "results" / f"startup-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
