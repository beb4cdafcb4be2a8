// communecast panel: the app's own date picker for the dd/mm/yyyy text fields (_fields.html,
// class "date-text"). A month grid from Monday (T2 … CN), month names in the page's language
// (base.html #date-picker-words), today (in the controller's time zone) marked; tapping a day
// writes dd/mm/yyyy into the field and keeps a time already typed after it (dd/mm/yyyy HH:MM
// fields). Escape, a tap outside, moving on to another field or "Đóng" closes it, and so does
// typing the whole value. The field stays a text field: typing works with or without this
// file, and the server reads and checks what is sent.
(function () {
  "use strict";

  var words = document.getElementById("date-picker-words");
  if (!words) return;
  var MONTHS = (words.getAttribute("data-months") || "").split("|");
  var DAYS = (words.getAttribute("data-days") || "").split("|");
  var TITLE = words.getAttribute("data-title") || "{month} {year}";
  var pop = null, grid = null, title = null, input = null;
  var shown = null;  // {y, m} (m 1-12) of the month on screen
  var focusDay = null;  // yyyy-mm-dd of the day to focus after a render (keyboard)
  var quiet = false;  // the field gets focus back after a choice: do not open again

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function ymd(y, m, d) { return y + "-" + pad(m) + "-" + pad(d); }
  function dmy(y, m, d) { return pad(d) + "/" + pad(m) + "/" + y; }

  function today() {
    var tz = words.getAttribute("data-tz") || undefined;
    try {
      var parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
        .formatToParts(new Date());
      var get = function (t) { return Number(parts.filter(function (p) { return p.type === t; })[0].value); };
      return { y: get("year"), m: get("month"), d: get("day") };
    } catch (e) {
      var now = new Date();
      return { y: now.getFullYear(), m: now.getMonth() + 1, d: now.getDate() };
    }
  }

  // dd/mm/yyyy at the start of the field (what the server reads), and what follows it (a time).
  function parse(value) {
    var m = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})(.*)$/.exec(value || "");
    if (!m) return null;
    var y = Number(m[3]), mo = Number(m[2]), d = Number(m[1]);
    var check = new Date(Date.UTC(y, mo - 1, d));
    if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return null;
    return { y: y, m: mo, d: d, rest: m[4].trim() };
  }

  function daysIn(y, m) { return new Date(Date.UTC(y, m, 0)).getUTCDate(); }
  function weekday(y, m, d) { return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7; }  // Monday 0

  function shift(y, m, d, days) {
    var t = new Date(Date.UTC(y, m - 1, d + days));
    return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
  }

  function button(cls, text, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    if (label) b.setAttribute("aria-label", label);
    return b;
  }

  function build() {
    pop = document.createElement("div");
    pop.className = "date-picker";
    pop.id = "date-picker";
    pop.setAttribute("role", "dialog");
    pop.setAttribute("aria-label", words.getAttribute("data-label") || "");
    pop.hidden = true;
    var head = document.createElement("div");
    head.className = "dp-head";
    var prev = button("dp-prev", "‹", words.getAttribute("data-prev"));
    var next = button("dp-next", "›", words.getAttribute("data-next"));
    title = document.createElement("span");
    title.className = "dp-title";
    title.setAttribute("aria-live", "polite");
    head.appendChild(prev);
    head.appendChild(title);
    head.appendChild(next);
    grid = document.createElement("table");
    grid.className = "dp-grid";
    grid.setAttribute("role", "grid");
    var foot = document.createElement("div");
    foot.className = "dp-foot";
    var todayBtn = button("dp-today", words.getAttribute("data-today-label") || "");
    var close = button("dp-close", words.getAttribute("data-close") || "×");
    foot.appendChild(todayBtn);
    foot.appendChild(close);
    pop.appendChild(head);
    pop.appendChild(grid);
    pop.appendChild(foot);
    document.body.appendChild(pop);

    prev.addEventListener("click", function () { turn(-1); });
    next.addEventListener("click", function () { turn(1); });
    // Back to the field after a choice made by keyboard (ev.detail 0); after a tap, not: on a
    // phone the field's focus would bring the keyboard up over the page again.
    close.addEventListener("click", function (ev) { hide(ev.detail === 0); });
    todayBtn.addEventListener("click", function (ev) { var t = today(); choose(t.y, t.m, t.d, ev.detail === 0); });
    grid.addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-ymd]");
      if (!b) return;
      var p = b.getAttribute("data-ymd").split("-").map(Number);
      choose(p[0], p[1], p[2], ev.detail === 0);
    });
    pop.addEventListener("keydown", keys);
  }

  function turn(by) {
    var m = shown.m + by, y = shown.y;
    if (m < 1) { m = 12; y -= 1; } else if (m > 12) { m = 1; y += 1; }
    shown = { y: y, m: m };
    render();
  }

  function render() {
    var y = shown.y, m = shown.m, t = today(), chosen = parse(input.value);
    title.textContent = TITLE.replace("{month}", MONTHS[m - 1] || String(m)).replace("{year}", String(y));
    grid.textContent = "";
    var thead = grid.createTHead(), row = thead.insertRow();
    DAYS.forEach(function (name) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      row.appendChild(th);
    });
    var body = grid.createTBody();
    var start = shift(y, m, 1, -weekday(y, m, 1));  // the Monday on or before the 1st
    var weeks = Math.ceil((weekday(y, m, 1) + daysIn(y, m)) / 7);
    for (var w = 0; w < weeks; w++) {
      var tr = body.insertRow();
      for (var i = 0; i < 7; i++) {
        var c = shift(start.y, start.m, start.d, w * 7 + i);
        var b = button("dp-day", String(c.d), dmy(c.y, c.m, c.d));
        b.setAttribute("data-ymd", ymd(c.y, c.m, c.d));
        b.tabIndex = -1;
        if (c.m !== m) b.classList.add("dp-other");
        if (c.y === t.y && c.m === t.m && c.d === t.d) { b.classList.add("dp-is-today"); b.setAttribute("aria-current", "date"); }
        if (chosen && c.y === chosen.y && c.m === chosen.m && c.d === chosen.d) {
          b.classList.add("dp-chosen");
          b.setAttribute("aria-pressed", "true");
        }
        var td = tr.insertCell();
        td.appendChild(b);
      }
    }
    var active = (focusDay && grid.querySelector('[data-ymd="' + focusDay + '"]')) ||
      grid.querySelector(".dp-chosen:not(.dp-other)") || grid.querySelector(".dp-is-today:not(.dp-other)") ||
      grid.querySelector(".dp-day:not(.dp-other)");
    if (active) active.tabIndex = 0;
    if (focusDay && active) active.focus();
    focusDay = null;
  }

  function place() {
    var r = input.getBoundingClientRect();
    var width = pop.offsetWidth;
    var left = Math.min(r.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - width - 8);
    pop.style.left = Math.max(window.scrollX + 8, left) + "px";
    pop.style.top = r.bottom + window.scrollY + 4 + "px";
  }

  function show(field) {
    if (!pop) build();
    input = field;
    var v = parse(field.value), t = today();
    shown = v ? { y: v.y, m: v.m } : { y: t.y, m: t.m };
    render();
    pop.hidden = false;
    field.setAttribute("aria-expanded", "true");
    place();
  }

  function hide(refocus) {
    if (!pop || pop.hidden) return;
    pop.hidden = true;
    if (input) {
      input.setAttribute("aria-expanded", "false");
      if (refocus) { quiet = true; input.focus(); quiet = false; }
    }
  }

  function choose(y, m, d, refocus) {
    var old = parse(input.value);
    var rest = old ? old.rest : "";
    var withTime = input.getAttribute("data-picker") === "datetime";
    if (withTime && !old) rest = (/\d{1,2}:\d{2}(:\d{2})?\s*$/.exec(input.value) || [""])[0].trim();
    input.value = dmy(y, m, d) + (withTime && rest ? " " + rest : "");
    hide(refocus);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function keys(ev) {
    if (ev.key === "Escape") { ev.preventDefault(); hide(true); return; }
    var b = ev.target.closest && ev.target.closest("button[data-ymd]");
    var step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 }[ev.key];
    if (!b || !step) return;
    ev.preventDefault();
    var p = b.getAttribute("data-ymd").split("-").map(Number), n = shift(p[0], p[1], p[2], step);
    focusDay = ymd(n.y, n.m, n.d);
    shown = { y: n.y, m: n.m };
    render();
  }

  function isField(el) { return el && el.classList && el.classList.contains("date-text"); }

  document.querySelectorAll("input.date-text").forEach(function (el) {
    el.setAttribute("aria-haspopup", "dialog");
    el.setAttribute("aria-expanded", "false");
    el.setAttribute("aria-controls", "date-picker");
  });
  document.addEventListener("focusin", function (ev) {
    if (isField(ev.target)) { if (!quiet) show(ev.target); }
    else if (pop && !pop.hidden && !pop.contains(ev.target)) hide(false);  // on to another field
  });
  document.addEventListener("click", function (ev) {  // a tap on a field that already has focus
    if (isField(ev.target) && (!pop || pop.hidden || input !== ev.target)) show(ev.target);
  });
  document.addEventListener("pointerdown", function (ev) {  // a tap outside closes
    if (pop && !pop.hidden && !pop.contains(ev.target) && ev.target !== input) hide(false);
  });
  document.addEventListener("keydown", function (ev) {
    if (!pop || pop.hidden || !isField(ev.target)) return;
    if (ev.key === "Escape") { ev.preventDefault(); hide(false); }
    else if (ev.key === "Tab") hide(false);
    else if (ev.key === "ArrowDown") {  // into the grid
      ev.preventDefault();
      var b = grid.querySelector('.dp-day[tabindex="0"]');
      if (b) b.focus();
    }
  });
  // Typing: the grid follows a whole day typed; once the field holds all it needs (the day, or
  // the day and a time) the picker steps aside so it covers nothing the person goes on to.
  function complete(field, v) {
    if (!v) return false;
    if (field.getAttribute("data-picker") !== "datetime") return v.rest === "";
    return /^\d{1,2}:\d{2}(:\d{2})?$/.test(v.rest);
  }
  document.addEventListener("input", function (ev) {
    if (!pop || pop.hidden || ev.target !== input) return;
    var v = parse(input.value);
    if (complete(input, v)) { hide(false); return; }
    if (v) shown = { y: v.y, m: v.m };
    render();
  });
  window.addEventListener("resize", function () { if (pop && !pop.hidden) place(); });
})();
