// The incident page: draws the chart (a Plotly figure from a JSON data block), counts down the
// personal-data breach deadline, and keeps the live regions (status and actions, timeline,
// notifications) current: the incident desk's socket says which incidents changed, and the page
// refetches its regions when this one is among them. A refresh waits while someone is typing in
// one of the forms, so nobody loses what they wrote.
(function () {
  "use strict";
  const REGIONS = ["incident-head", "incident-timeline", "incident-notifications"];
  const STATE_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    forbidden: "Not live (no access)",
    waiting: "Live · changes wait until you send or clear what you typed",
  };
  const RETRY_EDITING_MS = 2000;
  const TYPED = "textarea, input[type=text], input[type=number], input[type=datetime-local]";

  function ready(callback) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  }

  // ---- the chart ----

  function drawChart() {
    const box = document.getElementById("incident-chart-plot");
    if (!box || !window.Plotly || box.dataset.drawn) return;
    const source = document.getElementById(box.dataset.source);
    if (!source) return;
    const figure = JSON.parse(source.textContent);
    box.dataset.drawn = "true";
    window.Plotly.newPlot(box, figure.data, figure.layout, {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    });
  }

  // ---- the breach countdown ----

  function spell(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    return hours + " h " + String(minutes).padStart(2, "0") + " min " +
      String(seconds).padStart(2, "0") + " s";
  }

  function tick() {
    for (const element of document.querySelectorAll("[data-deadline]")) {
      const deadline = Date.parse(element.dataset.deadline);
      if (Number.isNaN(deadline)) continue;
      const left = deadline - Date.now();
      const passed = left <= 0;
      element.textContent = passed
        ? "the deadline passed " + spell(left) + " ago"
        : spell(left) + " left";
      element.classList.toggle("error", passed);
      element.classList.toggle("warn", !passed);
    }
  }

  // ---- live regions ----

  function editing() {
    // A field someone is in, or one whose text differs from what the page rendered.
    for (const id of REGIONS) {
      const region = document.getElementById(id);
      if (!region) continue;
      const active = document.activeElement;
      if (region.contains(active) && active.matches("input, textarea, select")) return true;
      for (const field of region.querySelectorAll(TYPED)) {
        if (field.value !== field.defaultValue) return true;
      }
    }
    return false;
  }

  function changed(field) {
    if (field.tagName === "SELECT") {
      return Array.from(field.options).some(function (o) { return o.selected !== o.defaultSelected; });
    }
    return field.value !== field.defaultValue;
  }

  // What someone typed into the other forms survives an action's answer, which replaces the
  // regions: only the form that was sent comes back as the server rendered it.
  function drafts(sent) {
    const saved = {};
    for (const id of REGIONS) {
      const region = document.getElementById(id);
      if (!region) continue;
      for (const field of region.querySelectorAll(TYPED + ", select")) {
        if (field.id && !(sent && sent.contains(field)) && changed(field)) {
          saved[field.id] = field.value;
        }
      }
    }
    return saved;
  }

  function restore(saved) {
    for (const id in saved) {
      const field = document.getElementById(id);
      if (field) field.value = saved[id];
    }
  }

  function replaceRegions(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html");
    for (const id of REGIONS) {
      const current = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (!current || !next) continue;
      next.removeAttribute("hx-swap-oob");
      const adopted = document.importNode(next, true);
      // Our own action's "done" line stays: the refresh its change causes carries none.
      const notice = current.querySelector("[data-notice]");
      const card = adopted.querySelector(".card");
      if (notice && card && !adopted.querySelector("[data-notice]")) card.prepend(notice);
      current.replaceWith(adopted);
      if (window.htmx) window.htmx.process(adopted);
    }
    tick();
  }

  ready(function () {
    const page = document.getElementById("incident-page");
    if (!page) return;
    const incidentId = page.dataset.incident;
    const status = document.getElementById("live-status");
    let waiting = null;
    let inFlight = false;
    let again = false;

    function refresh() {
      if (editing()) {
        if (status.dataset.state === "live") status.textContent = STATE_TEXT.waiting;
        if (waiting === null) {
          waiting = setTimeout(function () {
            waiting = null;
            refresh();
          }, RETRY_EDITING_MS);
        }
        return;
      }
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      fetch(page.dataset.refreshUrl, {
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (response.status === 403 || response.status === 404) {
            // Access went (a role changed): say so rather than show a stale incident.
            status.dataset.state = "forbidden";
            status.textContent = "No longer visible to you: reload the page";
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          replaceRegions(html);
          if (status.dataset.state === "live") status.textContent = STATE_TEXT.live;
        })
        .catch(function () {
          // Offline for a moment: the socket's reconnect asks again.
        })
        .finally(function () {
          inFlight = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    }

    drawChart();
    tick();
    setInterval(tick, 1000);

    // The chart arrives in a second request (htmx swaps it in); an action's answer replaces
    // the regions out of band.
    let pending = null;
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      if (page.contains(event.detail.elt)) pending = drafts(event.detail.elt.closest("form"));
    });
    document.body.addEventListener("htmx:afterSettle", function () {
      if (pending !== null) {
        restore(pending);
        pending = null;
      }
      drawChart();
      tick();
    });

    if (!window.PortalLive || !status) return;
    status.hidden = false;
    let wasLive = false;
    window.PortalLive.open({
      path: page.dataset.wsPath,
      stateElements: [status],
      onState: function (state) {
        status.textContent = STATE_TEXT[state] || state;
        // Back after a gap: what changed meanwhile was not announced to this page.
        if (state === "live" && wasLive) refresh();
        if (state === "live") wasLive = true;
      },
      onMessage: function (message) {
        // An empty list means the member's access changed: what this page may show may have too.
        if (message.type === "changed" && Array.isArray(message.incidents) &&
            (message.incidents.length === 0 || message.incidents.indexOf(incidentId) !== -1)) {
          refresh();
        }
      },
    });
  });
})();
