// Draw every chart embedded by marketing_ai.charts.embed (figure JSON in a sibling <script>).
(function () {
  function draw() {
    document.querySelectorAll("script[data-chart-for]").forEach(function (node) {
      var target = document.getElementById(node.getAttribute("data-chart-for"));
      if (!target || target.dataset.drawn) return;
      var fig = JSON.parse(node.textContent);
      Plotly.newPlot(target, fig.data, fig.layout, { responsive: true, displaylogo: false });
      target.dataset.drawn = "1";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
  window.marketingAiDrawCharts = draw;
})();
