// Leadflow console: live countdowns, and the Now board kept current over Server-Sent
// Events. Everything reads without this script; it only keeps the page from going stale.
(function () {
  "use strict";
  var offset = 0; // server clock minus this browser's, from the board's data-now

  function duration(seconds) {
    var s = Math.round(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }

  function syncClock(root) {
    var board = root.querySelector("[data-now]");
    if (board) offset = Date.parse(board.getAttribute("data-now")) - Date.now();
  }

  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-due")) - now) / 1000;
      var overdue = left <= 0;
      el.textContent = overdue ? "overdue by " + duration(-left) : "in " + duration(left);
      el.classList.toggle("overdue", overdue);
      el.classList.toggle("due", !overdue);
    });
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = duration(Math.max(0, (now - Date.parse(el.getAttribute("data-since"))) / 1000));
    });
  }

  function live(container) {
    var state = document.getElementById("live-state");
    if (!window.EventSource) return;
    var source = new EventSource(container.getAttribute("data-live"));
    source.addEventListener("board", function (event) {
      // Keep what the viewer is typing in a reassign form: skip the swap while one has focus.
      if (container.contains(document.activeElement) && document.activeElement.tagName !== "BODY" &&
          document.activeElement.tagName !== "A" && document.activeElement.tagName !== "BUTTON") return;
      container.innerHTML = event.data;
      syncClock(container);
      tick();
      container.setAttribute("data-updated", String(Date.now()));
    });
    source.onopen = function () { if (state) state.textContent = "Live."; };
    source.onerror = function () {
      if (!state) return;
      // A lost connection is retried (CONNECTING). A stream the server refuses, as it does
      // once the session is signed out or expired (the sign-in page answers instead), is
      // not: say so, or the page would claim to reconnect forever over stale numbers.
      if (source.readyState !== EventSource.CLOSED) {
        state.textContent = "Reconnecting…";
        return;
      }
      var again = document.createElement("a");
      again.href = window.location.href;
      again.textContent = "reload the page";
      state.textContent = "Not live any more (signed out or expired?): ";
      state.appendChild(again);
      state.appendChild(document.createTextNode(" to sign in again."));
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    syncClock(document);
    tick();
    window.setInterval(tick, 1000);
    var container = document.querySelector("[data-live]");
    if (container) live(container);
  });
})();
