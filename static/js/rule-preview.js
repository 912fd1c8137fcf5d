// Draws a rule's preview with Plotly: the expression's series, its threshold (dashed) and the
// periods the rule would have fired (shaded). The data comes from a JSON data block
// (<script type="application/json">) that the page renders; nothing here is inline.
(function () {
  "use strict";

  function draw() {
    const box = document.getElementById("preview-chart");
    if (!box || !window.Plotly) return;
    const source = document.getElementById(box.dataset.source);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    const traces = data.series.map(function (series) {
      return {
        type: "scatter",
        mode: "lines",
        name: series.name,
        x: series.x,
        y: series.y,
        connectgaps: false,
        hovertemplate: "%{y}<extra>%{fullData.name}</extra>",
      };
    });
    const shapes = data.firing.map(function (span) {
      return {
        type: "rect",
        xref: "x",
        yref: "paper",
        x0: span[0],
        x1: span[1],
        y0: 0,
        y1: 1,
        fillcolor: "rgba(200, 40, 40, 0.12)",
        line: { width: 0 },
        layer: "below",
      };
    });
    if (data.threshold !== null) {
      shapes.push({
        type: "line",
        xref: "paper",
        x0: 0,
        x1: 1,
        yref: "y",
        y0: data.threshold,
        y1: data.threshold,
        line: { color: "rgb(200, 40, 40)", width: 2, dash: "dash" },
      });
    }
    const layout = {
      margin: { l: 50, r: 10, t: 10, b: 40 },
      height: 320,
      showlegend: traces.length > 1 && traces.length <= 10,
      legend: { orientation: "h", y: -0.2 },
      xaxis: { type: "date", range: [data.start, data.end], title: { text: "UTC" } },
      yaxis: { rangemode: "tozero", zeroline: false },
      shapes: shapes,
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
    };
    window.Plotly.newPlot(box, traces, layout, {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
