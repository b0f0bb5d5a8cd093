"""The docs stay current where a script can tell: docs/architecture.md names every slice
under alliance/, and every link from the README or between docs reaches a file."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.nodb  # reads the files, not a database


def slices() -> set[str]:
    return {p.parent.name for p in (ROOT / "alliance").glob("*/__init__.py")}


def unnamed_slices(architecture: str) -> set[str]:
    """Slices without a row of their own in the architecture doc's table of slices."""
    return {name for name in slices() if f"\n| `{name}` |" not in architecture}


def test_the_architecture_doc_names_every_slice():
    assert len(slices()) >= 14
    assert unnamed_slices((ROOT / "docs" / "architecture.md").read_text()) == set()


def test_the_slice_check_notices_a_missing_slice():
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert unnamed_slices(architecture.replace("\n| `digests` |", "\n| digests |")) == {"digests"}


def test_links_from_the_readme_and_docs_reach_files():
    checked, broken = 0, []
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            checked += 1
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert checked > 10 and broken == []
