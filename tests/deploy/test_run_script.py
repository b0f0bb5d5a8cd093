"""`make run`'s script: every process it starts runs in the background and is tracked, so
that the `wait -n` ends the others when any of them stops (gunicorn's `&` once sat inside a
comment: it ran in the foreground and was never tracked)."""
import re
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "run.sh"


def test_every_long_running_process_is_started_in_the_background_and_tracked():
    lines = SCRIPT.read_text().splitlines()
    code = [line.split(" #", 1)[0].rstrip() for line in lines]  # comments dropped
    starts = [i for i, line in enumerate(code)
              if re.search(r"\$VENV/bin/(gunicorn|celery)\b", line)]
    assert len(starts) == 3  # the worker, beat and gunicorn
    for i in starts:
        end = i
        while code[end].endswith("\\"):
            end += 1
        assert code[end].endswith("&"), lines[end]
        assert code[end + 1].strip() == "pids+=($!)", lines[end + 1]
    assert any(line.strip().startswith('wait -n "${pids[@]}"') for line in code)
