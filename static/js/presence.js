// Presence on the tenant home: who else is looking at this tenant, kept live over a WebSocket
// (static/js/live.js reconnects it and sets data-state on the box).
(function () {
  "use strict";
  const box = document.getElementById("presence");
  if (!box || !window.PortalLive) return;
  const list = box.querySelector(".presence-list");

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

  window.PortalLive.open({
    path: box.dataset.wsPath,
    stateElements: [box],
    onMessage: function (message) {
      if (message.type === "presence") render(message.viewers);
    },
    onState: function (state) {
      if (state === "reconnecting") list.textContent = "reconnecting…";
      if (state === "forbidden") list.textContent = "not available";
    },
  });
})();
