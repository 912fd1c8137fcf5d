// Live pages: a WebSocket to the page's own host that stays open. It reconnects with backoff,
// pings so the server keeps it fresh, and shows its state on the given elements (data-state:
// connecting, live, reconnecting, forbidden). A close with 4403 means access is gone: no retry.
(function () {
  "use strict";
  const FORBIDDEN = 4403;
  const FIRST_RETRY_MS = 1000;
  const MAX_RETRY_MS = 30000;
  const LABELS = {
    connecting: "connecting…",
    live: "live",
    reconnecting: "reconnecting…",
    forbidden: "not available",
  };

  // options: path ("/ws/…/"), stateElements (elements that get data-state), onMessage(message),
  // onState(state) (optional), pingMs (0 for no ping; default 20 s).
  function open(options) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + window.location.host + options.path;
    const pingMs = options.pingMs === undefined ? 20000 : options.pingMs;
    let retryMs = FIRST_RETRY_MS;
    let retryTimer = null;
    let pingTimer = null;
    let socket = null;
    let stopped = false;

    function setState(state) {
      for (const element of options.stateElements || []) {
        element.dataset.state = state;
        // A .live-indicator carries its own text; other elements only take the state.
        if (element.classList.contains("live-indicator")) element.textContent = LABELS[state];
      }
      if (options.onState) options.onState(state);
    }

    function connect() {
      retryTimer = null;
      socket = new WebSocket(url);
      socket.onopen = function () {
        retryMs = FIRST_RETRY_MS;
        setState("live");
        if (pingMs) {
          pingTimer = setInterval(function () {
            socket.send(JSON.stringify({ type: "ping" }));
          }, pingMs);
        }
      };
      socket.onmessage = function (event) {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        options.onMessage(message);
      };
      socket.onclose = function (event) {
        clearInterval(pingTimer);
        pingTimer = null;
        if (stopped) return;
        if (event.code === FORBIDDEN) {
          stopped = true;
          setState("forbidden");
          return;
        }
        setState("reconnecting");
        // Jitter spreads the reconnects of many pages after a server restart.
        const delay = retryMs / 2 + Math.random() * (retryMs / 2);
        retryTimer = setTimeout(connect, delay);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      };
    }

    // Back online: try now instead of waiting out the backoff.
    window.addEventListener("online", function () {
      if (retryTimer !== null && !stopped) {
        clearTimeout(retryTimer);
        retryMs = FIRST_RETRY_MS;
        connect();
      }
    });

    setState("connecting");
    connect();
    return {
      send: function (message) {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      },
      close: function () {
        stopped = true;
        clearTimeout(retryTimer);
        if (socket) socket.close();
      },
    };
  }

  window.PortalLive = { open: open, FORBIDDEN: FORBIDDEN };
})();
