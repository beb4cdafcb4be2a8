// communecast panel: live dashboard counts (SSE), local audio preview before upload,
// auto-refresh of a broadcast's play log. No libraries.
(function () {
  "use strict";

  function liveCounts() {
    var box = document.getElementById("counts");
    if (!box || !window.EventSource) return;
    var live = document.getElementById("live");
    var source = new EventSource(box.getAttribute("data-stream"));
    source.addEventListener("open", function () { if (live) live.classList.add("on"); });
    source.addEventListener("error", function () { if (live) live.classList.remove("on"); });
    source.addEventListener("counts", function (ev) {
      var d = JSON.parse(ev.data);
      ["total", "online", "offline", "playing"].forEach(function (k) {
        var el = document.getElementById("count-" + k);
        if (el) el.textContent = String(d[k]);
      });
      var rows = document.querySelectorAll("#commune-table tr[data-commune]");
      var needReload = false;
      Object.keys(d.communes).forEach(function (id) {
        if (!document.querySelector('#commune-table tr[data-commune="' + id + '"]')) needReload = true;
      });
      rows.forEach(function (row) {
        var c = d.communes[row.getAttribute("data-commune")] || [0, 0, 0];
        var vals = { total: c[0], online: c[1], offline: c[0] - c[1], playing: c[2] };
        row.querySelectorAll("[data-k]").forEach(function (cell) {
          cell.textContent = String(vals[cell.getAttribute("data-k")]);
        });
      });
      if (needReload || (!rows.length && d.total > 0)) {
        // A commune appeared: the table layout changed, fetch the page again.
        source.close();
        window.location.reload();
      }
    });
  }

  function localPreview() {
    var input = document.getElementById("upload-file");
    var player = document.getElementById("local-preview");
    if (!input || !player) return;
    input.addEventListener("change", function () {
      if (player.src) URL.revokeObjectURL(player.src);
      if (input.files && input.files[0]) {
        player.src = URL.createObjectURL(input.files[0]);
        player.hidden = false;
      } else {
        player.hidden = true;
      }
    });
  }

  function autoRefresh() {
    var el = document.querySelector("[data-refresh]");
    if (!el) return;
    var seconds = parseInt(el.getAttribute("data-refresh"), 10) || 5;
    setTimeout(function () {
      if (document.visibilityState === "visible") window.location.reload();
      else autoRefresh();
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveCounts();
    localPreview();
    autoRefresh();
  });
})();
