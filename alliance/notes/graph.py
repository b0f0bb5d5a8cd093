"""The graph of a note (issue 23): its objects as nodes, its relationships and references as
edges, and the readable notes one hop out (those sharing an observable value with it, from
reading.correlated, which goes through the read rule and leaves warning-listed and very
common values out). Drawn by static/js/graph.js with Cytoscape.js from the note's
graph.json, and shown as a table where the script does not run.

Only what the reader may see goes in: the note's own objects (they read the note), and
related notes they may read. A reference to an object the note does not hold draws no node:
it is "not available" on the page whether or not it exists elsewhere."""
from alliance.notes.models import Note
from alliance.stix import attack, observables

MAX_NODES = 300
# Not drawn: the note's own report (it refers to everything), markings, and references that
# every object carries (its creator, its markings).
HIDDEN_TYPES = frozenset({"marking-definition", "extension-definition", "language-content"})
PLAIN_REFS = frozenset({"created_by_ref", "object_marking_refs"})
LABEL_KEYS = ("name", "value", "abstract", "key", "path", "subject", "user_id", "display_name")


def label(body: dict) -> str:
    """What to call an object in the graph (templates/notes/_stix.html's label, shortly)."""
    stix_type = str(body.get("type", ""))
    if stix_type == "attack-pattern":
        for technique in attack.techniques(attack.technique_ids(body)):
            if technique.known:
                return f"{technique.id} {technique.name}"
    if stix_type == "relationship" and isinstance(body.get("relationship_type"), str):
        return body["relationship_type"]
    if stix_type == "location" and isinstance(body.get("country"), str):
        return body["country"]
    if stix_type == "opinion" and isinstance(body.get("opinion"), str):
        return f"Opinion: {body['opinion']}"
    hashes = body.get("hashes")
    for key in LABEL_KEYS:
        value = body.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)[:80]
    if isinstance(hashes, dict) and hashes:
        return str(sorted(hashes.items())[0][1])[:80]
    return stix_type.replace("-", " ").capitalize()


def _references(body: dict):
    """(property, STIX id) for each reference an object makes, but its creator and
    markings: source_ref, sighting_of_ref, object_refs, where_sighted_refs, ..."""
    for key, value in body.items():
        if key in PLAIN_REFS:
            continue
        if key.endswith("_ref") and isinstance(value, str):
            yield key, value
        elif key.endswith("_refs") and isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    yield key, item


def _object_nodes(note: Note, objects) -> list:
    """The note's objects worth a node, in page order; relationships become edges."""
    return [o for o in objects if o.type not in HIDDEN_TYPES and o.type != "relationship"
            and o.stix_id != note.report_id]


def _edges(objects, present: set[str]) -> list[dict]:
    edges = []
    for o in objects:
        body = o.body
        if o.type == "relationship":
            source, target = body.get("source_ref"), body.get("target_ref")
            if source in present and target in present:
                edges.append({"id": o.stix_id, "source": source, "target": target,
                              "label": str(body.get("relationship_type", "")).replace("-", " "),
                              "card": f"obj-{o.id}"})
            continue
        if o.stix_id not in present:
            continue
        for key, target in _references(body):
            if target in present and target != o.stix_id:
                name = key.removesuffix("_refs").removesuffix("_ref").replace("_", " ")
                edges.append({"id": f"{o.stix_id}>{key}>{target}", "source": o.stix_id,
                              "target": target, "label": name})
    return edges


def _unlinked_author(note: Note, nodes: list[dict], edges: list[dict]) -> list[dict]:
    """Without its author identity when nothing but created_by_ref points at it: every
    object of the note would, and the page names the author already."""
    linked = {e["source"] for e in edges} | {e["target"] for e in edges}
    author = note.organisation.stix_id
    return [n for n in nodes if n["id"] != author or author in linked]


def _related_part(objects, related, room: int) -> tuple[list[dict], list[dict]]:
    """Nodes for the related notes (at most `room`) and an edge from each object of this
    note that carries a value they share to each of them."""
    carriers: dict[str, list[str]] = {}
    for o in objects:
        for _kind, value in observables.extract(o.body):
            carriers.setdefault(value, []).append(o.stix_id)
    nodes, edges = [], []
    for other, values in related[:max(room, 0)]:
        node_id = f"note--{other.uuid}"
        nodes.append({"id": node_id, "label": other.title[:80], "type": "note",
                      "group": "related", "tlp": other.tlp, "url": f"/notes/{other.uuid}"})
        for value in values:
            for source in dict.fromkeys(carriers.get(value, ())):
                edges.append({"id": f"{source}>{node_id}>{value}", "source": source,
                              "target": node_id, "label": f"shares {value}"[:80]})
    return nodes, edges


def note_graph(note: Note, objects, related, limit: int | None = None) -> dict:
    """The graph of a note its reader has read through the policy: nodes and edges in
    Cytoscape.js's element shape, at most `limit` nodes (the note's objects first, then
    related notes), with the totals so that the page can say what it left out.
    `objects`: the note's objects (reading.note_objects); `related`: reading.correlated
    for the same reader (readable notes only); `limit`: MAX_NODES unless given."""
    limit = MAX_NODES if limit is None else limit
    candidates = _object_nodes(note, objects)
    nodes = [{"id": o.stix_id, "label": label(o.body), "type": o.type, "group": "object",
              "card": f"obj-{o.id}"} for o in candidates]
    edges = _edges(objects, {n["id"] for n in nodes})
    nodes = _unlinked_author(note, nodes, edges)
    total = len(nodes) + len(related)
    nodes = nodes[:limit]
    shown = {n["id"] for n in nodes}
    edges = [e for e in edges if e["source"] in shown and e["target"] in shown]
    more_nodes, more_edges = _related_part(
        [o for o in candidates if o.stix_id in shown], related, limit - len(nodes))
    nodes += more_nodes
    edges += more_edges
    return {"nodes": nodes, "edges": edges, "total": total, "shown": len(nodes),
            "limit": limit, "truncated": total > len(nodes)}
