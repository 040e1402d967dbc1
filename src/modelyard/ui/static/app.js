// modelyard ui: draws the metric charts (uPlot) from the JSON each <figure class="chart"> holds.
// A chart's JSON is {series name: [[x...], [y...]]}; several series are drawn on one x axis.
(function () {
  "use strict";
  var COLORS = ["#2f6fde", "#c53030", "#1f8a4c", "#b7791f", "#7a3fb3", "#0f8a8a", "#d5458c", "#555"];

  function merge(bySeries) {
    var names = Object.keys(bySeries);
    var xs = {};
    names.forEach(function (n) { bySeries[n][0].forEach(function (x) { xs[x] = true; }); });
    var x = Object.keys(xs).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    x.forEach(function (v, i) { index[v] = i; });
    var data = [x];
    names.forEach(function (n) {
      var ys = new Array(x.length).fill(null);
      var s = bySeries[n];
      for (var i = 0; i < s[0].length; i++) { ys[index[s[0][i]]] = s[1][i]; }
      data.push(ys);
    });
    return { names: names, data: data };
  }

  function draw(fig) {
    if (fig.dataset.drawn) { return; }
    var script = fig.querySelector("script[type='application/json']");
    if (!script || typeof uPlot === "undefined") { return; }
    var m = merge(JSON.parse(script.textContent));
    var width = Math.max(300, fig.clientWidth - 14);
    var series = [{ label: "step" }];
    m.names.forEach(function (n, i) {
      series.push({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
                    points: { show: m.data[0].length < 60 } });
    });
    new uPlot({ width: width, height: 200, series: series, scales: { x: { time: false } },
                legend: { show: m.names.length > 1 } }, m.data, fig);
    fig.dataset.drawn = "1";
  }

  function drawAll(root) {
    (root || document).querySelectorAll("figure.chart").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
})();
