// The note page's copy buttons and links to its STIX cards. Without this file the values are
// plain text to select and copy, and the links lead to cards that open as they are reached.
(function () {
  "use strict";

  // Open the card with this id (every <details> around it), scroll to it and focus it.
  function revealCard(id) {
    var card = document.getElementById(id);
    if (!card) {
      return;
    }
    for (var el = card.parentElement; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") {
        el.open = true;
      }
    }
    if (!card.hasAttribute("tabindex")) {
      card.setAttribute("tabindex", "-1");
    }
    card.scrollIntoView({block: "start"});
    card.focus({preventScroll: true});
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http outside localhost has no clipboard API: the older way.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var done = document.execCommand("copy");
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function said(button, text) {
    var label = button.firstChild;
    var before = label.nodeValue;
    label.nodeValue = text;
    setTimeout(function () { label.nodeValue = before; }, 2000);
  }

  function onClick(event) {
    var button = event.target.closest("button.copy-button");
    if (button) {
      copyText(button.dataset.copy).then(function () { said(button, "Copied"); },
                                         function () { said(button, "Select and copy"); });
      return;
    }
    var link = event.target.closest("a.reveal-card");
    if (link && link.hash) {
      event.preventDefault();
      history.replaceState(null, "", link.hash);
      revealCard(link.hash.slice(1));
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button.copy-button[hidden]").forEach(function (b) {
      b.hidden = false;
    });
    document.addEventListener("click", onClick);
    // graph.js asks for a card when a node is selected.
    document.addEventListener("note:reveal", function (event) { revealCard(event.detail); });
    if (/^#obj-\d+$/.test(location.hash)) {
      revealCard(location.hash.slice(1));
    }
  });
  window.addEventListener("hashchange", function () {
    if (/^#obj-\d+$/.test(location.hash)) {
      revealCard(location.hash.slice(1));
    }
  });
})();
