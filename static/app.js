// Progressive enhancement only: every page reads fine without this script.
// 1. Show <time datetime="..."> in the viewer's own time zone (UTC stays in the title on hover).
// 2. Ask before submitting forms marked data-confirm.
// 3. Keep an element marked data-poll="ms" (with an id) current: fetch the page again after that long and swap
//    in the new element, until it comes back without data-poll (a running import's progress).
// 4. Console tables (.ops table.table with a header row) stack on a phone: each cell gets its column's name
//    (data-label, shown by the CSS under 40rem) and explicit table roles, which a screen reader would
//    otherwise lose once CSS changes the table's display.
(function () {
  "use strict";
  // In the page's language (a Spanish personal page reads Spanish dates whatever the browser's language).
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
  } catch (e) { fmt = null; }
  function localise(root) {
    if (!fmt) return;
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.localised || el.dataset.dateOnly !== undefined) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = fmt.format(d);
      el.dataset.localised = "1";
    });
  }
  function poll(el) {
    var every = parseInt(el.dataset.poll, 10) || 2000;
    window.setTimeout(function () {
      fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (!fresh) return;
          fresh = document.adoptNode(fresh);
          el.replaceWith(fresh);
          localise(fresh);
          stackable(fresh);
          if (fresh.dataset.poll) poll(fresh);
        })
        .catch(function () { poll(el); });
    }, every);
  }
  function stackable(root) {
    root.querySelectorAll(".ops table.table:not(.no-stack)").forEach(function (table) {
      var heads = table.querySelectorAll("thead th");
      if (!heads.length || table.dataset.stack) return;
      var names = Array.prototype.map.call(heads, function (th) { return th.textContent.trim(); });
      table.setAttribute("role", "table");
      table.querySelectorAll("thead, tbody, tfoot").forEach(function (g) { g.setAttribute("role", "rowgroup"); });
      table.querySelectorAll("tr").forEach(function (tr) {
        tr.setAttribute("role", "row");
        var col = 0;
        Array.prototype.forEach.call(tr.children, function (cell) {
          var header = cell.tagName === "TH";
          cell.setAttribute("role", header ? (tr.parentNode.tagName === "THEAD" ? "columnheader" : "rowheader") : "cell");
          if (names[col]) cell.dataset.label = names[col];
          col += cell.colSpan || 1;
        });
      });
      table.dataset.stack = "1";
      table.classList.add("stack");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    stackable(document);
    document.querySelectorAll("[data-poll][id]").forEach(poll);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
  });
})();
