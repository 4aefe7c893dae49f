// hpmkd report script, inlined into every report. Draws each chart from its JSON figure
// with the one shared template (sent once, not per figure), then makes the leaderboard
// sortable (click or Enter on a header) and filterable (the search box).
(function () {
  "use strict";
  var template = JSON.parse(document.getElementById("hpmkd-plotly-template").textContent);
  var config = {responsive: true, displaylogo: false, showLink: false,
                modeBarButtonsToRemove: ["sendDataToCloud"]};
  var charts = document.querySelectorAll(".hpmkd-chart");
  Array.prototype.forEach.call(charts, function (div) {
    var fig = JSON.parse(document.getElementById(div.getAttribute("data-figure")).textContent);
    fig.layout.template = template;
    Plotly.newPlot(div, fig.data, fig.layout, config).catch(function (err) {
      console.error("chart " + div.id + " failed: " + err);
    });
  });

  var table = document.getElementById("leaderboard");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var headers = table.tHead.rows[0].cells;
  var rows = Array.prototype.slice.call(tbody.rows);
  rows.forEach(function (row, i) { row.setAttribute("data-order", String(i)); });

  function key(row, col, numeric) {
    var raw = row.cells[col].getAttribute("data-value");
    if (numeric) {
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    }
    return (raw === null ? row.cells[col].textContent : raw).toLowerCase();
  }
  function sortBy(col) {
    var th = headers[col];
    var numeric = th.getAttribute("data-type") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var current = Array.prototype.slice.call(tbody.rows);
    current.sort(function (a, b) {
      var x = key(a, col, numeric), y = key(b, col, numeric);
      var oa = +a.getAttribute("data-order"), ob = +b.getAttribute("data-order");
      if (x === null && y === null) { return oa - ob; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return (ascending ? c : -c) || (oa - ob);
    });
    current.forEach(function (row) { tbody.appendChild(row); });
  }
  Array.prototype.forEach.call(headers, function (th, col) {
    th.addEventListener("click", function () { sortBy(col); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(col); }
    });
  });

  var box = document.getElementById("leaderboard-filter");
  var count = document.getElementById("leaderboard-count");
  function filter() {
    var q = box.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var match = !q || row.textContent.toLowerCase().indexOf(q) !== -1;
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    count.textContent = "showing " + shown + " of " + rows.length + " rows";
  }
  box.addEventListener("input", filter);
  filter();
})();
