// communecast panel: drag a coming one-off bulletin to another day (month view) or another
// day and hour (week view). Pointer events, so a finger works as well as a mouse. The drop
// posts the SAME form the "Đổi giờ" page posts (/schedules/broadcasts/{id}/move: CSRF, the
// right to send, usecases.broadcasts.reschedule with its policy, approval and refusals) and
// asks for JSON; a refusal is said in the page's language and the item goes back where it was.
// Only what the server marked movable ([data-move]) can be picked up: recurring occurrences
// and past plays never are. Without this file the "Đổi giờ" link does the same.
(function () {
  "use strict";

  var words = document.getElementById("drag-words");
  if (!words || !window.fetch || !window.PointerEvent) return;
  var status = document.getElementById("drag-status");
  var THRESHOLD = 6;  // px before a press becomes a drag (a tap stays a tap)
  var drag = null;
  var swallowClick = false;

  function zones() { return document.querySelectorAll("[data-drop]"); }
  if (!zones().length) return;
  if (document.querySelector('[data-drop="day"]')) {  // the month grid: a day's list can be dragged onto it
    document.querySelectorAll(".drag-handle[data-move]").forEach(function (h) { h.hidden = false; });
  }

  function say(text, kind) {
    if (!status) return;
    status.textContent = text;
    status.className = "drag-status" + (kind ? " " + kind : "");
    status.hidden = !text;
  }

  function zoneAt(x, y) {
    var el = document.elementFromPoint(x, y);
    return el ? el.closest("[data-drop]") : null;
  }

  // Where a drop puts the bulletin: the zone's day, and the zone's hour (week) or its own time.
  function target(zone, item) {
    var clock = item.getAttribute("data-clock") || "";
    var hour = zone.getAttribute("data-hour");
    if (hour) clock = hour + ":" + clock.split(":")[1];
    return { day: zone.getAttribute("data-day"), clock: clock };
  }

  function sameAsBefore(zone, item) {
    var from = item.getAttribute("data-from") || "";
    var here = zone.getAttribute("data-day") + (zone.getAttribute("data-hour") ? " " + zone.getAttribute("data-hour") : "");
    return from === here;
  }

  function highlight(zone) {
    if (drag.over === zone) return;
    if (drag.over) drag.over.classList.remove("drop-over");
    drag.over = zone;
    if (zone) zone.classList.add("drop-over");
  }

  function start(ev) {
    var item = ev.target.closest("[data-move]");
    if (!item || ev.button > 0) return;
    if (ev.pointerType === "mouse") ev.preventDefault();  // no text selection while dragging
    drag = { item: item, x: ev.clientX, y: ev.clientY, id: ev.pointerId, moving: false, over: null, ghost: null };
  }

  function begin() {
    var item = drag.item, box = item.getBoundingClientRect();
    var ghost = document.createElement("div");
    ghost.className = "drag-ghost";
    ghost.textContent = item.getAttribute("data-title") || item.textContent.trim();
    ghost.style.width = Math.max(120, Math.min(260, box.width)) + "px";
    document.body.appendChild(ghost);
    drag.ghost = ghost;
    drag.moving = true;
    item.classList.add("dragging");
    document.documentElement.classList.add("drag-active");
    try { item.setPointerCapture(drag.id); } catch (e) { /* already released */ }
  }

  function move(ev) {
    if (!drag || ev.pointerId !== drag.id) return;
    if (!drag.moving) {
      if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) < THRESHOLD) return;
      begin();
    }
    ev.preventDefault();
    drag.ghost.style.left = ev.clientX + 8 + "px";
    drag.ghost.style.top = ev.clientY + 8 + "px";
    highlight(zoneAt(ev.clientX, ev.clientY));
    var edge = 48;  // near the top or bottom of the screen: scroll, so a phone reaches the grid
    if (ev.clientY < edge) window.scrollBy(0, -12);
    else if (ev.clientY > window.innerHeight - edge) window.scrollBy(0, 12);
  }

  function end(ev) {
    if (!drag || ev.pointerId !== drag.id) return;
    var d = drag;
    drag = null;
    if (!d.moving) return;  // a tap: the link or button does what it always did
    swallowClick = true;
    setTimeout(function () { swallowClick = false; }, 400);
    d.ghost.remove();
    d.item.classList.remove("dragging");
    document.documentElement.classList.remove("drag-active");
    if (d.over) d.over.classList.remove("drop-over");
    var zone = ev.type === "pointerup" ? zoneAt(ev.clientX, ev.clientY) : null;
    if (!zone || sameAsBefore(zone, d.item)) return;
    drop(d.item, zone);
  }

  function placeIn(zone, item) {
    var box = zone.querySelector(".day-first") || zone.querySelector(".day-link") || zone;
    box.appendChild(item);
  }

  function drop(item, zone) {
    var home = { parent: item.parentNode, next: item.nextSibling };
    var to = target(zone, item);
    var pending = item.classList.contains("drag-handle") ? null : item;
    if (pending) { placeIn(zone, pending); pending.classList.add("move-pending"); }
    zone.classList.add("drop-pending");
    say(words.getAttribute("data-busy"), "busy");
    var body = new FormData();
    body.append("csrf", words.getAttribute("data-csrf"));
    body.append("day", to.day);
    body.append("clock", to.clock);
    function putBack(message) {
      if (pending) {
        pending.classList.remove("move-pending");
        home.parent.insertBefore(pending, home.next);
      }
      zone.classList.remove("drop-pending");
      say(message, "error");
    }
    fetch(item.getAttribute("data-move"), {
      method: "POST", body: body, credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (r) {
      return r.json().catch(function () { return { ok: false }; });
    }).then(function (answer) {
      if (!answer.ok) { putBack(answer.message || words.getAttribute("data-failed")); return; }
      say(answer.notice, "done");
      if (zone.getAttribute("data-drop") === "slot") {  // the week: the same week again, with the notice
        var url = new URL(window.location.href);
        url.searchParams.set("ok", answer.ok_key);
        url.hash = "week";
        window.location.assign(url.toString());
      } else {
        window.location.assign(answer.location);  // the month of the new day, that day listed
      }
    }, function () { putBack(words.getAttribute("data-failed")); });
  }

  document.addEventListener("pointerdown", start);
  document.addEventListener("pointermove", move, { passive: false });
  document.addEventListener("pointerup", end);
  document.addEventListener("pointercancel", end);
  document.addEventListener("click", function (ev) {  // the click that ends a drag opens nothing
    if (swallowClick) { ev.preventDefault(); ev.stopPropagation(); swallowClick = false; return; }
    var handle = ev.target.closest && ev.target.closest(".drag-handle[data-move]");
    if (handle) window.location.assign(handle.getAttribute("data-move"));  // a tap or Enter: the "Đổi giờ" form
  }, true);
  document.addEventListener("dragstart", function (ev) {  // no native link or text drag
    if (ev.target.closest && ev.target.closest("[data-move], [data-drop]")) ev.preventDefault();
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && drag && drag.moving) {
      drag.ghost.remove();
      drag.item.classList.remove("dragging");
      document.documentElement.classList.remove("drag-active");
      if (drag.over) drag.over.classList.remove("drop-over");
      drag = null;
    }
  });
})();
