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
      box.dispatchEvent(new CustomEvent("cc:counts", { detail: d }));  // dashboard-alarms.js
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

  // ---- feature pages (routes_*.py) ----
  function poll(url, seconds, onData) {
    function tick() {
      if (document.visibilityState !== "visible") { setTimeout(tick, seconds * 1000); return; }
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d && onData(d) === false) return; setTimeout(tick, seconds * 1000); })
        .catch(function () { setTimeout(tick, seconds * 1000); });
    }
    tick();
  }

  function stationState() {
    var el = document.querySelector("#station-state[data-poll]");
    if (!el) return;
    poll(el.getAttribute("data-poll"), 2, function (d) {
      var pill = document.createElement("span");
      pill.className = "pill " + (d.online ? "ok" : "bad");
      pill.textContent = el.getAttribute(d.online ? "data-online" : "data-offline");
      el.replaceChildren(pill);
    });
  }

  function ledPreview() {
    var text = document.getElementById("led-text");
    var img = document.getElementById("led-preview");
    var color = document.getElementById("led-color");
    if (!text || !img) return;
    var timer = null;
    function update() {
      var url = img.getAttribute("data-base") + "?text=" + encodeURIComponent(text.value) +
        "&color=" + encodeURIComponent(color ? color.value : "amber");
      img.setAttribute("src", url);
    }
    function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
    text.addEventListener("input", later);
    if (color) color.addEventListener("change", update);
  }

  function emergencyProgress() {
    var box = document.querySelector("#emergency-progress[data-status]");
    if (!box) return;
    var bar = document.getElementById("progress-bar");
    function width(onAir, total) { if (bar) bar.style.width = (total ? Math.round(100 * onAir / total) : 0) + "%"; }
    if (bar) bar.style.width = (bar.getAttribute("data-width") || "0") + "%";
    poll(box.getAttribute("data-status"), 2, function (d) {
      document.getElementById("on-air").textContent = String(d.on_air);
      document.getElementById("total").textContent = String(d.total);
      width(d.on_air, d.total);
      var body = document.getElementById("not-on-air");
      if (body) {
        var rows = d.not_on_air.map(function (x) {
          var tr = document.createElement("tr");
          [x.name, x.state, x.reason].forEach(function (v) {
            var td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
          });
          return tr;
        });
        if (!rows.length) {
          var tr = document.createElement("tr"), td = document.createElement("td");
          td.colSpan = 3; td.className = "muted"; td.textContent = body.getAttribute("data-empty") || "";
          tr.appendChild(td); rows = [tr];
        }
        body.replaceChildren.apply(body, rows);
      }
    });
  }

  function busyButtons() {
    document.querySelectorAll("button[data-busy]").forEach(function (b) {
      if (b.form) b.form.addEventListener("submit", function () {
        setTimeout(function () { b.disabled = true; b.textContent = b.getAttribute("data-busy"); }, 0);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveCounts();
    localPreview();
    autoRefresh();
    stationState();
    ledPreview();
    emergencyProgress();
    busyButtons();
  });
})();
