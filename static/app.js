// Progressive enhancement only: every page reads fine without this script.
// 1. Show <time datetime="..."> in the viewer's own time zone (UTC stays in the title on hover).
// 2. Ask before submitting forms marked data-confirm.
(function () {
  "use strict";
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(undefined, {
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
  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
  });
})();
