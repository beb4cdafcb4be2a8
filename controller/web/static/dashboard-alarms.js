// communecast panel, dashboard: open alarms (count + newest five) kept live from the same
// SSE stream as the counts (panel.js re-dispatches each "counts" event on #counts as
// "cc:counts"). The server formats every field; this only copies text. No libraries.
(function () {
  "use strict";

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function show(a) {
    var count = document.getElementById("alarm-count");
    var unacked = document.getElementById("alarm-unacked");
    var body = document.getElementById("alarm-rows");
    if (!count || !body) return;
    count.textContent = String(a.active);
    count.className = "pill " + (a.active ? "bad" : "ok");
    if (unacked) unacked.textContent = String(a.unacknowledged);
    var rows = a.newest.map(function (x) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-alarm", String(x.id));
      var where = document.createElement("td"), link = document.createElement("a");
      link.href = "/ops/stations/" + encodeURIComponent(x.device_id);
      link.textContent = x.device;
      where.appendChild(link);
      var state = document.createElement("td"), pill = document.createElement("span");
      pill.className = "pill " + (x.state === "open" ? "bad" : "st-interrupted");
      pill.textContent = x.state_label;
      state.appendChild(pill);
      tr.append(where, cell(x.kind), cell(x.since), state);
      return tr;
    });
    if (!rows.length) {
      var tr = document.createElement("tr"), td = cell(body.getAttribute("data-empty") || "");
      td.colSpan = 4;
      td.className = "muted";
      tr.appendChild(td);
      rows = [tr];
    }
    body.replaceChildren.apply(body, rows);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("counts");
    if (!box) return;
    box.addEventListener("cc:counts", function (ev) {
      if (ev.detail && ev.detail.alarms) show(ev.detail.alarms);
    });
  });
})();
