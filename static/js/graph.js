// The note page's graph (templates/notes/_summary.html): its objects, their links and the
// related notes one hop out, drawn with Cytoscape.js (static/vendor/, `make node-deps`) from
// the note's graph.json (alliance/notes/graph.py), which the read rule answers like the note.
// Without this file or Cytoscape.js, the table under the box shows the same nodes and links.
(function () {
  "use strict";

  var COLOURS = {
    related: "#b45309", incident: "#b42318", indicator: "#1d4ed8", vulnerability: "#7c3aed",
    "attack-pattern": "#0f766e", malware: "#9d174d", "threat-actor": "#7f1d1d",
    identity: "#475569", location: "#166534", sighting: "#a16207", report: "#1e3a8a"
  };

  function short(text) {
    return text.length > 28 ? text.slice(0, 27) + "…" : text;
  }

  function elements(data) {
    var nodes = data.nodes.map(function (n) {
      return {group: "nodes", data: Object.assign({}, n, {
        short: short(n.label), colour: COLOURS[n.group === "related" ? "related" : n.type] || "#334155"
      })};
    });
    var edges = data.edges.map(function (e) {
      return {group: "edges", data: Object.assign({}, e, {short: short(e.label)})};
    });
    return nodes.concat(edges);
  }

  var STYLE = [
    {selector: "node", style: {
      "background-color": "data(colour)", "label": "data(short)", "font-size": 10,
      "color": "#1c2430", "text-valign": "bottom", "text-margin-y": 3, "width": 18, "height": 18,
      "text-background-color": "#ffffff", "text-background-opacity": 0.8
    }},
    {selector: "node[group = 'related']", style: {"shape": "round-rectangle", "width": 22}},
    {selector: "node:selected", style: {"border-width": 3, "border-color": "#111827"}},
    {selector: "edge", style: {
      "width": 1.2, "line-color": "#94a3b8", "target-arrow-color": "#94a3b8",
      "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(short)",
      "font-size": 8, "color": "#5b6675", "text-rotation": "autorotate"
    }}
  ];

  function select(node, status) {
    var data = node.data();
    status.textContent = "";
    if (data.group === "related") {
      var link = document.createElement("a");
      link.href = data.url;
      link.textContent = data.label;
      status.append("Related note: ", link, " (TLP:" + data.tlp + ")");
      return;
    }
    status.textContent = "Selected: " + data.label + " (" + data.type.replace(/-/g, " ") + ")";
    document.dispatchEvent(new CustomEvent("note:reveal", {detail: data.card}));
  }

  function draw(box, data) {
    // Cytoscape adds an inline <style> unless an element has this id; the CSP forbids inline
    // styles, and note.css gives the box the position that style would.
    if (!document.getElementById("__________cytoscape_stylesheet")) {
      var marker = document.createElement("meta");
      marker.id = "__________cytoscape_stylesheet";
      document.head.appendChild(marker);
    }
    box.hidden = false;
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", "Graph of " + data.nodes.length + " nodes and " +
                     data.edges.length + " links; the table below lists them.");
    var cy = window.cytoscape({
      container: box, elements: elements(data), style: STYLE, wheelSensitivity: 0.3,
      layout: data.nodes.length > 150 ? {name: "concentric", animate: false}
        : {name: "cose", animate: false, randomize: false, nodeRepulsion: 9000}
    });
    var status = document.getElementById("graph-selection");
    cy.on("tap", "node", function (event) { select(event.target, status); });
    box.cy = cy;  // for the console and the browser tests
    var table = document.getElementById("graph-table");
    if (table) {
      table.open = false;
    }
    box.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("graph-canvas");
    if (!box || typeof window.cytoscape !== "function" || !window.fetch) {
      return;
    }
    fetch(box.dataset.src, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("graph.json: " + response.status);
        }
        return response.json();
      })
      .then(function (data) { draw(box, data); })
      .catch(function () { /* the table stays */ });
  });
})();
