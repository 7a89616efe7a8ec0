// Progressive enhancement: draws each <canvas data-chart="ID"> from the JSON block #ID with
// Chart.js (vendored beside this file). Pages are complete without it: every chart's data
// is also in a table.
(function () {
  "use strict";
  function draw(root) {
    if (typeof Chart === "undefined") { return; }
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) { return; }
      var block = document.getElementById(canvas.dataset.chart);
      if (!block) { return; }
      var spec = JSON.parse(block.textContent);
      canvas.dataset.drawn = "1";
      new Chart(canvas, {
        type: spec.type || "line",
        data: { labels: spec.labels, datasets: spec.datasets },
        options: Object.assign({
          animation: false,
          responsive: true,
          maintainAspectRatio: true,
          plugins: { legend: { display: (spec.datasets || []).length > 1 } },
          scales: spec.scales || {}
        }, spec.options || {})
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
})();
