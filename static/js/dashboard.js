// Dashboard page: draws the server-built figures with Plotly.js, appends live points, shows how
// fresh the data is, downloads a panel as PNG and reloads on the chosen refresh interval.
(function () {
  "use strict";
  const MAX_LIVE_POINTS = 5000;

  function ready(callback) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  }

  ready(function () {
    const grid = document.getElementById("panel-grid");
    const source = document.getElementById("dashboard-panels");
    if (!grid || !source || !window.Plotly) return;
    const payloads = JSON.parse(source.textContent);
    const panels = {};
    const config = { responsive: true, displaylogo: false, displayModeBar: false };

    for (const payload of payloads) {
      const card = document.getElementById("panel-" + payload.id);
      if (!card) continue;
      const plot = card.querySelector("[data-plot]");
      panels[payload.id] = { payload: payload, plot: plot };
      if (payload.error) {
        const error = card.querySelector(".panel-error");
        error.textContent = payload.error;
        error.hidden = false;
        continue;
      }
      window.Plotly.newPlot(plot, payload.figure.data, payload.figure.layout, config);
    }
    // The grid sizes panels after first paint; let the plots follow it.
    window.addEventListener("resize", function () {
      for (const id in panels) {
        if (panels[id].plot.data) window.Plotly.Plots.resize(panels[id].plot);
      }
    });

    grid.addEventListener("click", function (event) {
      const button = event.target.closest("[data-png]");
      if (!button) return;
      const panel = panels[button.dataset.png];
      if (!panel || !panel.plot.data) return;
      window.Plotly.downloadImage(panel.plot, {
        format: "png",
        filename: panel.payload.title.replace(/[^\w.-]+/g, "-").toLowerCase() || "panel",
        width: panel.plot.clientWidth || 800,
        height: panel.plot.clientHeight || 400,
      });
    });

    // Live mode: new points as they are ingested, and how long ago the last one came.
    const stateElement = document.getElementById("live-state");
    const ageElement = document.getElementById("live-age");
    const toggle = document.getElementById("live-toggle");
    let lastUpdate = null;
    let connection = null;

    setInterval(function () {
      if (lastUpdate === null) return;
      const seconds = Math.round((Date.now() - lastUpdate) / 1000);
      ageElement.textContent = "last update " + seconds + " s ago";
    }, 1000);

    function applyPoints(update) {
      const panel = panels[update.panel];
      if (!panel || !panel.plot.data || !update.points.length) return;
      const xs = update.points.map(function (p) { return p[0]; });
      const ys = update.points.map(function (p) { return p[1]; });
      const kind = panel.payload.kind;
      if (kind === "timeseries" || kind === "bar") {
        window.Plotly.extendTraces(panel.plot, { x: [xs], y: [ys] }, [0], MAX_LIVE_POINTS);
      } else if (kind === "gauge") {
        window.Plotly.restyle(panel.plot, { value: [ys[ys.length - 1]] }, [0]);
      } else if (kind === "stat") {
        if (panel.plot.data.length > 1) {
          window.Plotly.extendTraces(panel.plot, { x: [xs], y: [ys] }, [1], MAX_LIVE_POINTS);
        }
        const current = panel.plot.data[0].value || 0;
        const aggregation = panel.payload.aggregation;
        let next = null;
        if (aggregation === "sum") next = current + ys.reduce(function (a, b) { return a + b; }, 0);
        else if (aggregation === "count") next = current + ys.length;
        else if (aggregation === "max") next = Math.max(current, Math.max.apply(null, ys));
        else if (aggregation === "min") next = Math.min(current, Math.min.apply(null, ys));
        if (next !== null) window.Plotly.restyle(panel.plot, { value: [next] }, [0]);
      }
      panel.plot.dataset.livePoints = String(
        Number(panel.plot.dataset.livePoints || 0) + update.points.length
      );
    }

    function startLive() {
      if (!window.PortalLive || connection) return;
      connection = window.PortalLive.open({
        path: "/ws/dashboards/" + grid.dataset.dashboard + "/",
        stateElements: [stateElement],
        onMessage: function (message) {
          if (message.type !== "points") return;
          for (const update of message.panels) applyPoints(update);
          lastUpdate = Date.now();
          ageElement.textContent = "last update 0 s ago";
        },
      });
    }

    function stopLive() {
      if (connection && connection.close) connection.close();
      connection = null;
      stateElement.dataset.state = "off";
      stateElement.textContent = "paused";
    }

    if (toggle) {
      toggle.addEventListener("change", function () {
        if (toggle.checked) startLive();
        else stopLive();
      });
    }
    startLive();

    const refresh = Number(grid.dataset.refresh || 0);
    if (refresh > 0) {
      setTimeout(function () { window.location.reload(); }, refresh * 1000);
    }
  });
})();
