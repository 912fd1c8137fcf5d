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

    // Colours of the server's figures (dashboards/figures.py LINE_COLOURS), for traces added here.
    const LINE_COLOURS = ["#1e88e5", "#8e24aa", "#00897b", "#f4511e", "#6d4c41", "#3949ab"];

    // Appends points to the trace called `name` (the first one when unnamed); a panel drawn
    // with no data yet, or a series that is new since the page loaded, gets a trace of its own.
    function extendLine(plot, kind, name, xs, ys) {
      const index = name === null ? 0 : plot.data.findIndex(function (trace) {
        return trace.name === name;
      });
      if (index >= 0 && index < plot.data.length) {
        window.Plotly.extendTraces(plot, { x: [xs], y: [ys] }, [index], MAX_LIVE_POINTS);
        return;
      }
      const colour = LINE_COLOURS[plot.data.length % LINE_COLOURS.length];
      const trace = { type: kind === "bar" ? "bar" : "scatter", x: xs, y: ys, marker: { color: colour } };
      if (name !== null) trace.name = name;
      if (kind !== "bar") {
        trace.mode = "lines";
        trace.line = { width: 1.5 };
      }
      window.Plotly.addTraces(plot, trace);
    }

    function applyPoints(update) {
      const panel = panels[update.panel];
      if (!panel || !panel.plot.data || !update.points.length) return;
      // Built-in panels send one line (`points`); Prometheus panels one per series, by name.
      const lines = update.series || [{ name: null, points: update.points }];
      const xs = update.points.map(function (p) { return p[0]; });
      const ys = update.points.map(function (p) { return p[1]; });
      const kind = panel.payload.kind;
      const hasValue = typeof update.value === "number";
      if (kind === "timeseries" || kind === "bar") {
        for (const line of lines) {
          if (!line.points.length) continue;
          extendLine(
            panel.plot,
            kind,
            line.name,
            line.points.map(function (p) { return p[0]; }),
            line.points.map(function (p) { return p[1]; })
          );
        }
      } else if (kind === "gauge") {
        window.Plotly.restyle(panel.plot, { value: [hasValue ? update.value : ys[ys.length - 1]] }, [0]);
      } else if (kind === "stat") {
        if (panel.plot.data.length > 1) {
          window.Plotly.extendTraces(panel.plot, { x: [xs], y: [ys] }, [1], MAX_LIVE_POINTS);
        } else {
          window.Plotly.addTraces(panel.plot, {
            type: "scatter", mode: "lines", x: xs, y: ys, fill: "tozeroy",
            line: { width: 1, color: LINE_COLOURS[0] }, hoverinfo: "skip", xaxis: "x", yaxis: "y",
          });
        }
        // A panel with no data yet has no figure to add to: the new points are all there is.
        const shown = panel.plot.data[0].value;
        const known = typeof shown === "number";
        const aggregation = panel.payload.aggregation;
        let next = null;
        if (hasValue) next = update.value;
        else if (aggregation === "latest") next = ys[ys.length - 1];
        else if (aggregation === "sum") next = (known ? shown : 0) + ys.reduce(function (a, b) { return a + b; }, 0);
        else if (aggregation === "count") next = (known ? shown : 0) + ys.length;
        else if (aggregation === "max") next = Math.max.apply(null, known ? ys.concat([shown]) : ys);
        else if (aggregation === "min") next = Math.min.apply(null, known ? ys.concat([shown]) : ys);
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
