// The incident list, live: a WebSocket to /ws/incidents/ (static/js/live.js reconnects it with
// backoff and pings it every 20 s) says when incidents changed; the page then refetches its rows
// fragment for the filters in the address bar. Changes arriving together cause one refetch.
(function () {
  "use strict";
  // Messages within this long of the first are answered by one refetch.
  const DEBOUNCE_MS = 300;
  // Relative times and "ack overdue" markers age even when nothing changes.
  const REFRESH_MS = 60000;
  const TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    forbidden: "Offline",
    offline: "Offline",
  };

  function ready(callback) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  }

  ready(function () {
    const results = document.getElementById("incident-results");
    const status = document.getElementById("live-status");
    if (!results || !status || !window.PortalLive || !window.htmx) return;
    let pending = null;
    let state = "connecting";

    function refetch() {
      pending = null;
      window.htmx.ajax("GET", results.dataset.rowsUrl + window.location.search, {
        target: results,
        swap: "innerHTML",
      });
    }

    function soon() {
      if (pending === null) pending = setTimeout(refetch, DEBOUNCE_MS);
    }

    function show(next) {
      status.dataset.state = next;
      status.textContent = TEXT[next] || TEXT.offline;
    }

    // Filters the server refuses come back as 400 with the reason: show it, as the page would.
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      if (event.detail.target === results && event.detail.xhr.status === 400) {
        event.detail.shouldSwap = true;
        event.detail.isError = false;
      }
    });

    window.PortalLive.open({
      path: "/ws/incidents/",
      stateElements: [status],
      onMessage: function (message) {
        if (message.type === "changed") soon();
      },
      onState: function (next) {
        // Back after a gap: whatever changed meanwhile was not announced.
        if (next === "live" && state === "reconnecting") soon();
        state = next;
        show(navigator.onLine === false && next !== "live" ? "offline" : next);
      },
    });

    window.addEventListener("offline", function () {
      if (state !== "live") show("offline");
    });

    // Only while live: a server that does not answer the socket would not answer this either.
    setInterval(function () {
      if (!document.hidden && state === "live") soon();
    }, REFRESH_MS);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && state === "live") soon();
    });
  });
})();
