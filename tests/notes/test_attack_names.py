"""ATT&CK techniques by name and tactic (issue 23), from the MISP galaxies package's offline
ATT&CK cluster: on the note page and beside the compose form's ATT&CK field; an id the data
does not know is shown as itself with "(unknown technique)"."""
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from alliance.extensions import db
from alliance.notes.models import Note
from alliance.stix import attack

ROOT = Path(__file__).parents[2]


def test_a_sub_technique_has_its_name_and_tactic_from_the_package_data():
    t = attack.technique("T1566.001")
    assert (t.id, t.name, t.tactics) == ("T1566.001", "Spearphishing Attachment",
                                         ("Initial Access",))
    assert t.label == "T1566.001 Spearphishing Attachment (Initial Access)"


def test_ids_are_read_in_any_case_and_a_technique_has_each_tactic_once():
    assert attack.technique("t1059.001").name == "PowerShell"
    assert attack.technique("T1059.001").tactics == ("Execution",)
    # Phishing is initial access on every platform it lists: one tactic, not six.
    assert attack.technique("T1566").tactics == ("Initial Access",)
    # A tactic named in the data (TA0011) keeps its own spelling.
    assert "Command and Control" in attack.technique("T1071").tactics


def test_ics_techniques_have_their_names_under_their_current_ids():
    """The ICS cluster names T0817 by its first id, T817."""
    t = attack.technique("T0817")
    assert (t.name, t.tactics) == ("Drive-by Compromise", ("Initial Access",))


def test_an_unknown_id_is_the_id_with_unknown_technique():
    t = attack.technique("T9999.999")
    assert not t.known and t.name is None
    assert t.label == "T9999.999 (unknown technique)"


def test_techniques_keeps_the_order_given_and_each_id_once():
    assert [t.id for t in attack.techniques(["T1566", "t1566", "T1059.001"])] == [
        "T1566", "T1059.001"]


def test_the_data_is_read_on_first_use_not_when_the_app_is_built():
    """Building the app and importing the notes views reads no ATT&CK or warning-list data
    and imports neither package's API (a command-line start stays fast)."""
    code = ("import sys\n"
            "from alliance import create_app\n"
            "create_app({'SQLALCHEMY_DATABASE_URI': 'sqlite://'})\n"
            "from alliance.notes import views, warninglists\n"
            "from alliance.stix import attack\n"
            "print(attack._techniques.cache_info().currsize,"
            " warninglists._lookup.cache_info().currsize,"
            " 'pymispgalaxies' in sys.modules, 'pymispwarninglists' in sys.modules)\n"
            "attack.technique('T1566')\n"
            "print(attack._techniques.cache_info().currsize)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split("\n")
    assert out[0] == "0 0 False False", out
    assert out[1] == "1", out


def _incident(client, alliance, **extra):
    data = {"title": "Phishing wave", "tlp": "AMBER", "alliances": str(alliance.id),
            "observables": "evil-login.example", "attack_ids": "T1566.001, T9999.999",
            **extra}
    return client.post("/notes/new/incident", data=data)


def test_the_note_page_shows_techniques_by_name_and_tactic(as_member, alliance):
    response = _incident(as_member, alliance, post="1")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    note = db.session.scalar(select(Note))
    page = as_member.get(f"/notes/{note.uuid}").get_data(as_text=True)

    summary = page[page.index('id="attack-techniques"'):page.index('id="objects"')]
    known = summary[summary.index('id="technique-T1566.001"'):]
    assert '<strong class="technique-name">Spearphishing Attachment</strong>' in known[:300]
    assert "tactic: Initial Access" in known[:300]
    unknown = summary[summary.index('id="technique-T9999.999"'):]
    assert "(unknown technique)" in unknown[:300]
    # On the attack pattern's own card too.
    cards = page[page.index('id="type-attack-pattern"'):]
    assert '<strong class="technique-name">Spearphishing Attachment</strong>' in cards
    assert "(tactic: Initial Access)" in cards


def test_the_compose_preview_echoes_the_techniques_by_name(as_member, alliance):
    response = _incident(as_member, alliance, preview="1")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    echo = page[page.index('id="attack-names"'):]
    echo = echo[:echo.index("</ul>")]
    assert "<code>T1566.001</code> Spearphishing Attachment" in echo
    assert "tactic: Initial Access" in echo
    assert "<code>T9999.999</code> <span class=\"muted\">(unknown technique)</span>" in echo
