"""Migration files list in the order they run: `ls migrations/versions` is the down_revision
chain from the first migration to the head, each file named `NNNN_<date>_<revision>_<slug>.py`
with NNNN its place in the chain. Alembic goes by the revision ids inside the files, not by
their names; the names are for the reader. `flask db revision` names a new file
`<date>_<revision>_<slug>.py` (migrations/alembic.ini): prefix it with the next number."""
import re
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

pytestmark = pytest.mark.nodb  # reads the files, not a database


def chain_order() -> list[str]:
    """File names from the first migration to the head, following down_revision."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    return [Path(s.path).name for s in reversed(list(scripts.walk_revisions()))]


def misnamed(listed: list[str], chain: list[str]) -> list[str]:
    """What is wrong with the names, `listed` in `ls` order: files out of chain order, or whose
    number is not their place in the chain."""
    problems = [f"listed {name}, chain has {wanted}"
                for name, wanted in zip(listed, chain, strict=True) if name != wanted]
    for place, name in enumerate(chain, 1):
        number = re.match(r"(\d{4})_", name)
        if not number or int(number[1]) != place:
            problems.append(f"{name} is number {place} in the chain: name it {place:04d}_…")
    return problems


def test_migration_files_list_in_chain_order():
    listed = sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))
    chain = chain_order()
    assert set(listed) == set(chain)  # no file outside the chain
    assert misnamed(listed, chain) == []


def test_the_name_check_notices_files_out_of_order():
    chain = ["0001_a.py", "0002_b.py", "0003_c.py"]
    assert misnamed(chain, chain) == []
    assert misnamed(["0001_a.py", "0003_c.py", "0002_b.py"],
                    ["0001_a.py", "0003_c.py", "0002_b.py"]) == [
        "0003_c.py is number 2 in the chain: name it 0002_…",
        "0002_b.py is number 3 in the chain: name it 0003_…"]
    assert misnamed(sorted(["0001_a.py", "20261208_d.py"]), ["0001_a.py", "20261208_d.py"]) == [
        "20261208_d.py is number 2 in the chain: name it 0002_…"]
    assert misnamed(["0001_a.py", "0002_b.py"], ["0002_b.py", "0001_a.py"]) == [
        "listed 0001_a.py, chain has 0002_b.py", "listed 0002_b.py, chain has 0001_a.py",
        "0002_b.py is number 1 in the chain: name it 0001_…",
        "0001_a.py is number 2 in the chain: name it 0002_…"]
