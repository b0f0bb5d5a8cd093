/* The dashboards' charts. Each chart's box (.chart-box[data-chart-src]) carries its figures
   (data-chart, the JSON its data endpoint data-chart-src answers; the endpoint is asked when
   they are missing); this script draws them with Chart.js (static/vendor, from npm) and shows
   the box. The same numbers are in the table beside it, which stays the way to
   read them without this script, and one click away with it. No inline script: the CSP
   allows only this site's own files. */
(function () {
  "use strict";

  var COLOURS = {
    "CLEAR": "#8a94a3", "GREEN": "#2e7d32", "AMBER": "#d98a00", "AMBER+STRICT": "#9a5b00",
    "RED": "#c62828", good: "#2e7d32", bad: "#c62828", wait: "#d98a00", count: "#1d4ed8",
    sighting: "#7b3fa0", gone: "#5b6675", org: "#1d4ed8", user: "#0f766e", figures: "#1d4ed8"
  };
  var FALLBACK = ["#1d4ed8", "#0f766e", "#7b3fa0", "#d98a00", "#c62828"];
  var MAX_LABEL = 26;  // characters of a category name on an axis

  function colour(key, i) {
    return COLOURS[key] || FALLBACK[i % FALLBACK.length];
  }

  function datasets(data) {
    return data.series.map(function (s, i) {
      var fill = colour(s.key, i);
      if (s.key === "tlp") {  // one series, a bar per TLP level in that level's colour
        fill = data.labels.map(function (label, j) {
          return colour(label.replace(/^TLP:/, ""), j);
        });
      }
      return {
        label: s.label, data: s.values, backgroundColor: fill, borderColor: fill,
        borderWidth: data.kind === "line" ? 2 : 0, pointRadius: 0, tension: 0.2
      };
    });
  }

  function config(data) {
    var stacked = data.kind === "stacked";
    var horizontal = data.kind === "hbar";
    var reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var many = data.labels.length > 8;
    var countAxis = { beginAtZero: true, stacked: stacked, ticks: { precision: 0 } };
    var categoryAxis = {
      stacked: stacked,
      ticks: {
        autoSkip: many, maxRotation: many || horizontal ? 0 : 45,
        callback: function (value) {  // a long name is shortened here; whole in the table
          var label = String(this.getLabelForValue(value));
          return label.length > MAX_LABEL ? label.slice(0, MAX_LABEL - 1) + "\u2026" : label;
        }
      }
    };
    return {
      type: data.kind === "line" ? "line" : "bar",
      data: { labels: data.labels, datasets: datasets(data) },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: reduced ? false : { duration: 300 },
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: data.series.length > 1, position: "bottom" },
          tooltip: { enabled: true }
        },
        scales: horizontal ? { x: countAxis, y: categoryAxis }
                           : { x: categoryAxis, y: countAxis }
      }
    };
  }

  function draw(box, data) {
    var canvas = box.querySelector("canvas");
    if (!canvas || !data || !Array.isArray(data.series)) {
      return;
    }
    box.hidden = false;
    if (data.kind === "hbar") {  // room for every bar and its label
      box.style.height = Math.max(10, 3 + data.labels.length * 2.2) + "rem";
    }
    new window.Chart(canvas, config(data));
    box.setAttribute("data-chart-drawn", "yes");
    var numbers = box.parentNode.querySelector("details.chart-numbers");
    if (numbers) {  // the chart shows them now; the table is one click away
      numbers.open = false;
    }
  }

  function load(box) {
    var inline = box.getAttribute("data-chart");
    if (inline) {  // the page carries the figures: no second request for them
      try {
        draw(box, JSON.parse(inline));
        return;
      } catch (error) {
        box.removeAttribute("data-chart");  // unreadable: ask the data endpoint instead
      }
    }
    fetch(box.getAttribute("data-chart-src"), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    }).then(function (data) {
      draw(box, data);
    }).catch(function () {
      box.setAttribute("data-chart-drawn", "failed");  // the table stays open
    });
  }

  function start() {
    if (typeof window.Chart !== "function" || typeof window.fetch !== "function") {
      return;  // without Chart.js the tables are the charts
    }
    Array.prototype.forEach.call(document.querySelectorAll(".chart-box[data-chart-src]"), load);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
