// Presence on the tenant home: who else is looking at this tenant, kept live over a WebSocket.
(function () {
  "use strict";
  const box = document.getElementById("presence");
  if (!box) return;
  const list = box.querySelector(".presence-list");
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = scheme + "//" + window.location.host + box.dataset.wsPath;
  let retryMs = 1000;
  let pingTimer = null;

  function render(viewers) {
    list.textContent = "";
    for (const v of viewers) {
      const item = document.createElement("span");
      item.className = "viewer";
      item.dataset.viewerId = v.id;
      item.textContent = v.name + " (" + v.role + ")";
      list.appendChild(item);
    }
  }

  function connect() {
    const socket = new WebSocket(url);
    socket.onopen = function () {
      retryMs = 1000;
      box.dataset.state = "live";
      pingTimer = setInterval(function () { socket.send(JSON.stringify({ type: "ping" })); }, 20000);
    };
    socket.onmessage = function (event) {
      const message = JSON.parse(event.data);
      if (message.type === "presence") render(message.viewers);
    };
    socket.onclose = function (event) {
      clearInterval(pingTimer);
      if (event.code === 4403) {
        box.dataset.state = "forbidden";
        list.textContent = "not available";
        return;
      }
      box.dataset.state = "reconnecting";
      list.textContent = "reconnecting…";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    };
  }
  connect();
})();
