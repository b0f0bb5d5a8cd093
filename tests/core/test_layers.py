"""The layer contract (issue 21; docs/architecture.md draws it): every module of the package
belongs to one unit, the units stand in layers, and a module imports only from its own unit or
from a unit in a lower layer. Imports inside functions count as much as those at the top of a
module. The module import graph has no cycle, and the pure STIX code imports neither Flask nor
the database.

The checker reads the source with `ast`; the tests below also show it catching a reverse
import and a cycle added to a copy of the real sources."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "alliance"

pytestmark = pytest.mark.nodb  # reads the source, not a database

# Lowest first. A unit is a set of module prefixes; a module belongs to the unit of its longest
# matching prefix. Units in one layer do not import each other.
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {"core": ("alliance.core", "alliance.extensions")},
    {"stix": ("alliance.stix",), "outbox": ("alliance.outbox",)},
    {"mail": ("alliance.mail",)},
    {"audit": ("alliance.audit.models", "alliance.audit.services")},
    {"orgs models": ("alliance.orgs.models",)},
    {"auth": ("alliance.auth",)},
    {"alliances": ("alliance.alliances",)},
    {"orgs": ("alliance.orgs",)},
    {"notes models": ("alliance.notes.models", "alliance.notes.events")},
    {"sharing": ("alliance.sharing",)},
    {"collection index": ("alliance.taxii.collections",)},
    {"notes": ("alliance.notes",), "apikeys": ("alliance.apikeys",)},
    {"taxii": ("alliance.taxii",), "digests": ("alliance.digests",)},
    {"audit log": ("alliance.audit",), "dashboard": ("alliance.dashboard",),
     "ops": ("alliance.ops",), "demo": ("alliance.demo",)},
    {"app": ("alliance", "alliance.cli")},
]
NO_FRAMEWORK = {"stix": ("flask", "flask_sqlalchemy", "flask_login", "sqlalchemy",
                         "alliance.extensions")}


def _units() -> dict[str, tuple[int, str]]:
    """Module prefix -> (layer index, unit name)."""
    return {prefix: (level, unit) for level, layer in enumerate(LAYERS)
            for unit, prefixes in layer.items() for prefix in prefixes}


def unit_of(module: str, units=None) -> tuple[int, str] | None:
    units = units or _units()
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        found = units.get(".".join(parts[:end]))
        if found:
            return found
    return None


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the source, wherever it stands. For
    `from a.b import c` the target is `a.b.c` when that names a module, else `a.b`: the
    caller resolves that against the known modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[:len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return found


def read_sources(root: Path = ROOT) -> dict[str, tuple[str, bool]]:
    """module -> (source, is_package) for every module of the package."""
    return {module_name(path, root): (path.read_text(), path.name == "__init__.py")
            for path in sorted((root / "alliance").rglob("*.py"))}


def graph(sources) -> dict[str, dict[str, int]]:
    """module -> {imported package module: line}."""
    edges: dict[str, dict[str, int]] = {}
    for module, (source, is_package) in sources.items():
        targets = edges.setdefault(module, {})
        for line, target in imports_of(module, source, is_package):
            if target in sources and target != module:
                targets.setdefault(target, line)
    return edges


def check(sources) -> list[str]:
    """Every breach of the contract, as sentences."""
    units = _units()
    problems = []
    for module in sources:
        if unit_of(module, units) is None:
            problems.append(f"{module} belongs to no unit: add it to LAYERS")
    edges = graph(sources)
    for module, targets in edges.items():
        here = unit_of(module, units)
        for target, line in targets.items():
            there = unit_of(target, units)
            if here is None or there is None or here[1] == there[1]:
                continue
            if there[0] >= here[0]:
                kind = "a unit of the same layer" if there[0] == here[0] else "a higher layer"
                problems.append(f"{module}:{line} imports {target} ({there[1]}), {kind} "
                                f"than {here[1]}")
    for unit, banned in NO_FRAMEWORK.items():
        for module, (source, is_package) in sources.items():
            if (unit_of(module, units) or (None, None))[1] != unit:
                continue
            for line, target in imports_of(module, source, is_package):
                if target.startswith(banned):
                    problems.append(f"{module}:{line} imports {target}: {unit} is pure code")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return problems


def cycles(edges) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group) + [sorted(group)[0]])

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_package_keeps_the_layer_contract():
    problems = check(read_sources())
    assert not problems, "\n".join(problems)


def test_a_reverse_import_breaks_the_contract():
    sources = dict(read_sources())
    source, is_package = sources["alliance.core.text"]
    sources["alliance.core.text"] = (
        source + "\n\ndef _late():\n    from alliance.notes import views  # noqa\n", is_package)
    problems = check(sources)
    assert any(p.startswith("alliance.core.text:") and "alliance.notes.views" in p
               and "a higher layer" in p for p in problems), problems


def test_an_import_between_units_of_one_layer_breaks_the_contract():
    sources = dict(read_sources())
    source, is_package = sources["alliance.stix.tlp"]
    sources["alliance.stix.tlp"] = ("from alliance.outbox import models\n" + source,
                                    is_package)
    assert any("alliance.stix.tlp:1 imports alliance.outbox.models (outbox), a unit of the "
               "same layer" in p for p in check(sources))


def test_a_cycle_inside_a_unit_breaks_the_contract():
    sources = dict(read_sources())
    source, is_package = sources["alliance.stix.tlp"]
    sources["alliance.stix.tlp"] = ("from alliance.stix import markings\n" + source,
                                    is_package)
    assert any(p.startswith("import cycle:") and "alliance.stix.markings" in p
               and "alliance.stix.tlp" in p for p in check(sources))


def test_a_module_outside_every_unit_breaks_the_contract():
    sources = dict(read_sources())
    sources["alliance_extra"] = ("", False)
    assert "alliance_extra belongs to no unit: add it to LAYERS" in check(sources)


def test_flask_in_the_stix_code_breaks_the_contract():
    sources = dict(read_sources())
    source, is_package = sources["alliance.stix.observables"]
    sources["alliance.stix.observables"] = (
        source + "\n\ndef _late():\n    from flask import current_app  # noqa\n", is_package)
    assert any(p.startswith("alliance.stix.observables:") and "pure code" in p
               for p in check(sources))
