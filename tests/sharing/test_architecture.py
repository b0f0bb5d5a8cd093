"""Architecture: the read rule lives in one module. Nothing under alliance/ except
alliance/sharing/policy.py may query the notes table; everything else composes
policy.readable_notes() / readable_note_ids() / get_readable_note*() (DESIGN.md: "The rule
lives in one module"; STYLE.md house rule 5).

The scanner reads the source with `ast`. It flags the ways a module can start a read of
`notes` by itself:
- select(...) / exists(...) / union(...) statements that mention Note anywhere in their chain
  (select(Note), select(Note.id), select(Observable).where(Observable.note_id == Note.id) —
  the last one puts `notes` into the FROM list implicitly);
- .select_from(Note), .join(Note ...), .outerjoin(Note ...), .join_from(Note ...);
- session.get(Note, ...), db.get_or_404(Note, ...), session.query(Note), Note.query,
  aliased(Note), Note.__table__, table("notes") / Table("notes");
- relationship("Note") / relationship(Note) (lazy loads read notes behind the rule's back);
- SQL text reading FROM/JOIN notes, in any string literal that is not a docstring.
Note may still be named for the things that do not read: constructing a row (post_note),
type hints, and conditions added to a statement that came from the policy
(readable_notes(p).where(Note.tlp == ...)), which the policy has already filtered."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "alliance"
THE_RULE = PACKAGE / "sharing" / "policy.py"
MODELS_MODULE = "alliance.notes.models"

pytestmark = pytest.mark.nodb  # reads the source, not a database

STATEMENT_BUILDERS = {"select", "exists", "union", "union_all", "intersect", "except_"}
FROM_METHODS = {"select_from", "join", "outerjoin", "join_from", "outerjoin_from", "query",
                "get", "get_or_404", "one_or_404", "first_or_404", "aliased", "with_entities"}
SQL_ON_NOTES = re.compile(r"""\b(from|join)\s+["`\[]?notes\b""", re.IGNORECASE)


def _call_name(func) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


class _NotesQueryFinder(ast.NodeVisitor):
    def __init__(self):
        self.note_names = set()    # local names bound to the Note class
        self.module_names = set()  # local names bound to alliance.notes.models
        self.findings = []         # (line, what)
        self._docstrings = set()

    # -- what names mean Note ------------------------------------------------------------
    def collect_names(self, tree) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.module == MODELS_MODULE:
                    for alias in node.names:
                        if alias.name in ("Note", "*"):
                            self.note_names.add(alias.asname or "Note")
                elif node.module == "alliance.notes":
                    for alias in node.names:
                        if alias.name == "models":
                            self.module_names.add(alias.asname or "models")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == MODELS_MODULE:
                        # `import alliance.notes.models` binds `alliance`; handled as a dotted
                        # name in _is_note. `import ... as m` binds m.
                        if alias.asname:
                            self.module_names.add(alias.asname)
            elif isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef,
                                   ast.ClassDef)):
                body = node.body
                if (body and isinstance(body[0], ast.Expr)
                        and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str)):
                    self._docstrings.add(id(body[0].value))

    def _is_note(self, node) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.note_names
        if isinstance(node, ast.Attribute) and node.attr == "Note":
            base = node.value
            if isinstance(base, ast.Name) and base.id in self.module_names:
                return True
            return ast.unparse(base) == MODELS_MODULE
        if isinstance(node, ast.Constant):
            return node.value == "Note"
        return False

    def _mentions_note(self, node) -> bool:
        return any(self._is_note(sub) and not isinstance(sub, ast.Constant)
                   for sub in ast.walk(node))

    def _chain(self, node):
        """The calls of a method chain, outermost first: a(...).b(...).c(...)."""
        calls = []
        while isinstance(node, ast.Call):
            calls.append(node)
            func = node.func
            node = func.value if isinstance(func, ast.Attribute) else None
        return calls

    def _flag(self, node, what: str) -> None:
        self.findings.append((node.lineno, what))

    # -- visitors --------------------------------------------------------------------------
    def visit_Call(self, node):
        name = _call_name(node.func)
        chain = self._chain(node)
        root = chain[-1]
        root_name = _call_name(root.func)
        # A statement built here (not from the policy) that names Note anywhere in its chain.
        # Only judge the outermost call of a chain, once.
        if (root_name in STATEMENT_BUILDERS and not getattr(node, "_inner", False)
                and any(self._mentions_note(arg)
                        for call in chain for arg in [*call.args, *(k.value for k in
                                                                     call.keywords)])):
            self._flag(node, f"{root_name}(...) statement on Note")
        for call in chain[:-1]:
            call._inner = True  # judged with the outermost call
        if name in FROM_METHODS and node.args and self._is_note(node.args[0]) \
                and not isinstance(node.args[0], ast.Constant):
            self._flag(node, f"{name}(Note, ...)")
        if name == "relationship" and node.args and self._is_note(node.args[0]):
            self._flag(node, "relationship to Note")
        if name in ("table", "Table") and node.args and isinstance(node.args[0], ast.Constant) \
                and node.args[0].value == "notes":
            self._flag(node, f'{name}("notes")')
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in ("query", "__table__") and self._is_note(node.value):
            self._flag(node, f"Note.{node.attr}")
        self.generic_visit(node)

    def visit_Constant(self, node):
        if (isinstance(node.value, str) and id(node) not in self._docstrings
                and SQL_ON_NOTES.search(node.value)):
            self._flag(node, "SQL text reading the notes table")


def direct_note_queries(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """Where this source reads the notes table without going through the policy."""
    tree = ast.parse(source, filename=filename)
    finder = _NotesQueryFinder()
    finder.collect_names(tree)
    finder.visit(tree)
    return sorted(finder.findings)


def test_only_the_policy_module_queries_the_notes_table():
    offenders = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20 and THE_RULE in modules  # we are scanning the real package
    for path in modules:
        if path == THE_RULE:
            continue
        for line, what in direct_note_queries(path.read_text(), str(path)):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert offenders == [], ("Read notes through alliance.sharing.policy (readable_notes, "
                             "get_readable_note_or_404, can_read):\n" + "\n".join(offenders))


def test_the_scanner_sees_the_policy_modules_own_queries():
    """The one module allowed to query notes does so in ways the scanner recognises — so a
    clean result elsewhere means something."""
    found = {what for _line, what in direct_note_queries(THE_RULE.read_text())}
    assert "select(...) statement on Note" in found
    assert "select_from(Note, ...)" in found


def test_a_view_that_selects_notes_itself_is_caught():
    views = (PACKAGE / "notes" / "views.py").read_text()
    assert direct_note_queries(views) == []
    leaky = views + (
        "\n\nfrom sqlalchemy import select\n"
        "from alliance.notes.models import Note\n\n\n"
        "@bp.route('/everything')\n"
        "def everything():\n"
        "    return {'n': len(db.session.scalars(select(Note)).all())}\n")
    assert [what for _line, what in direct_note_queries(leaky)] == [
        "select(...) statement on Note"]


FLAGGED = {
    "select entity": "from alliance.notes.models import Note\n"
                     "db.session.scalars(select(Note))",
    "select column": "from alliance.notes.models import Note\n"
                     "db.session.scalars(select(Note.id).where(Note.tlp == 'RED'))",
    "count": "from alliance.notes.models import Note\n"
             "db.session.scalar(select(func.count()).select_from(Note))",
    "implicit FROM": "from alliance.notes.models import Note, Observable\n"
                     "select(Observable).where(Observable.note_id == Note.id)",
    "exists": "from alliance.notes.models import Note\n"
              "select(User).where(exists().where(Note.author_id == User.id))",
    "join": "from alliance.notes.models import Note, Observable\n"
            "stmt = select(Observable.value)\n"
            "stmt.join(Note, Note.id == Observable.note_id)",
    "get": "from alliance.notes.models import Note\ndb.session.get(Note, 3)",
    "get_or_404": "from alliance.notes.models import Note\ndb.get_or_404(Note, 3)",
    "legacy query": "from alliance.notes.models import Note\nNote.query.filter_by(id=3).first()",
    "session.query": "from alliance.notes.models import Note\ndb.session.query(Note).all()",
    "alias": "from alliance.notes.models import Note as N\ndb.session.scalars(select(N))",
    "module attribute": "from alliance.notes import models\n"
                        "db.session.scalars(select(models.Note))",
    "dotted module": "import alliance.notes.models\n"
                     "db.session.scalars(select(alliance.notes.models.Note))",
    "aliased": "from alliance.notes.models import Note\nother = aliased(Note)",
    "table": "from alliance.notes.models import Note\n"
             "db.session.execute(Note.__table__.select())",
    "lightweight table": "notes = table('notes', column('id'))",
    "raw SQL": "db.session.execute(text('SELECT id, title FROM notes WHERE tlp = :t'))",
    "raw SQL join": "db.session.execute(text('SELECT 1 FROM observables o JOIN notes n "
                    "ON n.id = o.note_id'))",
    "relationship": "class Alliance(db.Model):\n    notes = relationship('Note')",
}

ALLOWED = {
    "composing the policy": "from alliance.notes.models import Note\n"
                            "from alliance.sharing.policy import readable_notes\n"
                            "readable_notes(p).where(Note.tlp == 'RED').order_by(Note.id)",
    "composing a statement from the policy":
        "from alliance.notes.models import Note\n"
        "stmt = readable_notes(p)\nstmt = stmt.where(Note.audiences.any())",
    "posting": "from alliance.notes.models import Note\n"
               "note = Note(title='x')\ndb.session.add(note)",
    "type hints": "from alliance.notes.models import Note\ndef f(note: Note) -> Note:\n"
                  "    return note",
    "other tables": "from alliance.notes.models import Observable\n"
                    "select(Observable.note_id).where(Observable.value == 'x')",
    "docstring": 'def f():\n    """Reads nothing from notes directly."""\n',
    "an unrelated Note": "import stix2\nstix2.v21.Note(content='x', object_refs=[])",
}


def test_the_scanner_flags_every_way_of_reading_notes_directly():
    missed = [name for name, source in FLAGGED.items() if not direct_note_queries(source)]
    assert missed == []


def test_the_scanner_allows_composing_the_policy_and_posting():
    flagged = {name: direct_note_queries(source) for name, source in ALLOWED.items()}
    assert {name: found for name, found in flagged.items() if found} == {}
