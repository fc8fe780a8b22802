// Keyboard triage for the incident list and an incident (templates/shortcuts.html lists the
// keys). Served from 'self' (the CSP allows no inline script). Every key does what a click on
// a link or button on the page would do; nothing happens while someone types in a field.
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.closest) return false;
    return target.isContentEditable ||
      target.closest("input, textarea, select, [contenteditable]") !== null;
  }

  // The list: each row's incident link, in order.
  function rowLinks() {
    return Array.prototype.slice.call(
      document.querySelectorAll("table.list tbody tr td[data-label='Incident'] a"));
  }

  var chosen = -1;

  function choose(step) {
    var links = rowLinks();
    if (!links.length) return;
    var at = links.indexOf(document.activeElement);
    if (at < 0) at = chosen;
    chosen = Math.max(0, Math.min(links.length - 1, at < 0 ? 0 : at + step));
    links.forEach(function (a, i) {
      a.closest("tr").classList.toggle("chosen", i === chosen);
    });
    links[chosen].focus();
  }

  function follow(rel) {
    var a = document.querySelector("a[rel='" + rel + "']");
    if (a) { window.location.assign(a.href); return true; }
    return false;
  }

  function toggleHelp() {
    var help = document.getElementById("shortcuts");
    if (!help) return;
    help.open = !help.open;
    if (help.open) help.querySelector("summary").focus();
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    var onList = rowLinks().length > 0;
    var handled = true;
    switch (e.key) {
      case "j":
        if (onList) choose(1); else handled = follow("next");
        break;
      case "k":
        if (onList) choose(-1); else handled = follow("prev");
        break;
      case "o":
      case "Enter":
        var links = rowLinks();
        if (onList && chosen >= 0 && links[chosen] &&
            (e.key === "o" || document.activeElement === document.body)) {
          window.location.assign(links[chosen].href);
        } else {
          handled = false;  // Enter on a focused link or button does its own thing
        }
        break;
      case "r":
        var start = Array.prototype.find.call(
          document.querySelectorAll("form button[type='submit']"),
          function (b) { return b.textContent.trim() === "Start review"; });
        if (start) start.click(); else handled = false;
        break;
      case "c":
        var outcome = document.querySelector("select[name='outcome']");
        if (outcome) outcome.focus(); else handled = false;
        break;
      case "?":
        toggleHelp();
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  });
})();
