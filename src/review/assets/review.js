// driftless review: keeps the overview table live without a reload (polling
// /api/objects every 2 s with the page's filters) and reloads an object's page when
// its object changes state. DOM is built with textContent only, never innerHTML: the
// rows hold names and messages from the cluster.
(function () {
  "use strict";
  var POLL_MS = 2000;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }

  function live(text) {
    var badge = document.getElementById("live");
    if (badge) badge.textContent = text;
  }

  function poll(url, onRows) {
    function schedule() { window.setTimeout(tick, POLL_MS); }
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) { live("session ended: reload to log in again"); return null; }
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (rows) {
          if (rows === null) return;
          onRows(rows);
          schedule();
        })
        .catch(function (e) { live("not updating (" + e.message + ")"); schedule(); });
    }
    schedule();
  }

  function key(kind, namespace, name) { return kind + "\u0000" + namespace + "\u0000" + name; }

  // The same cells the server renders for a tr.object.
  function fill(tr, row) {
    tr.className = "object";
    tr.setAttribute("data-kind", row.kind);
    tr.setAttribute("data-namespace", row.namespace);
    tr.setAttribute("data-name", row.name);
    tr.setAttribute("data-state", row.state);
    while (tr.firstChild) tr.removeChild(tr.firstChild);
    tr.appendChild(el("td", "kind", row.kind));
    var object = el("td", "object");
    var link = el("a", "object-link", row.namespace + "/" + row.name);
    link.href = row.url;
    object.appendChild(link);
    tr.appendChild(object);
    tr.appendChild(el("td", "state", row.state));
    tr.appendChild(el("td", "checked", row.lastCheckedAt || ""));
    tr.appendChild(el("td", "plan", row.planId || ""));
    var drift = el("td", "drift", row.drift || "");
    if (row.acknowledgedBy) drift.appendChild(el("span", "ack", " acknowledged by " + row.acknowledgedBy));
    tr.appendChild(drift);
    tr.appendChild(el("td", "message", row.message || ""));
  }

  function overview(table) {
    var body = table.tBodies[0];
    var query = table.getAttribute("data-query") || "";
    var signatures = new WeakMap();
    poll("/api/objects" + (query ? "?" + query : ""), function (rows) {
      var existing = {};
      Array.prototype.forEach.call(body.querySelectorAll("tr.object"), function (tr) {
        existing[key(tr.getAttribute("data-kind"), tr.getAttribute("data-namespace"), tr.getAttribute("data-name"))] = tr;
      });
      rows.forEach(function (row) {
        var k = key(row.kind, row.namespace, row.name);
        var tr = existing[k] || document.createElement("tr");
        delete existing[k];
        var signature = JSON.stringify(row);
        if (signatures.get(tr) !== signature) {
          fill(tr, row);
          signatures.set(tr, signature);
        }
        body.appendChild(tr);
      });
      Object.keys(existing).forEach(function (k) { body.removeChild(existing[k]); });
      var count = document.getElementById("count");
      if (count) count.textContent = String(rows.length);
      live("live");
    });
  }

  function objectPage(main) {
    var kind = main.getAttribute("data-kind");
    var name = main.getAttribute("data-name");
    var namespace = main.getAttribute("data-namespace");
    var shown = [main.getAttribute("data-state"), main.getAttribute("data-plan-id"), main.getAttribute("data-drift-id"),
      main.getAttribute("data-acknowledged-by")].join("\u0000");
    var url = "/api/objects?namespace=" + encodeURIComponent(namespace) + "&kind=" + encodeURIComponent(kind);
    poll(url, function (rows) {
      var row = rows.filter(function (r) { return r.name === name; })[0];
      if (!row) { live("this object is gone"); return; }
      var now = [row.state, row.planId || "", row.driftId || "", row.acknowledgedBy || ""].join("\u0000");
      if (now !== shown) window.location.reload();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var filters = document.getElementById("filters");
    if (filters) {
      Array.prototype.forEach.call(filters.querySelectorAll("select"), function (select) {
        select.addEventListener("change", function () { filters.submit(); });
      });
    }
    var table = document.getElementById("objects");
    if (table && window.fetch) overview(table);
    var main = document.getElementById("object");
    if (main && window.fetch) objectPage(main);
  });
})();
