// Stations list (issue 20): "select all on this page" and how many are chosen. The form works
// without this script; it only saves taps on a phone.
(function () {
  "use strict";
  var form = document.getElementById("bulk-form");
  if (!form) return;
  var all = document.getElementById("select-all");
  var count = document.getElementById("picked-count");
  function picks() { return form.querySelectorAll("input.pick"); }
  function update() {
    var n = 0;
    picks().forEach(function (p) { if (p.checked) n += 1; });
    if (count) count.textContent = "(" + n + ")";
  }
  if (all) all.addEventListener("change", function () {
    picks().forEach(function (p) { p.checked = all.checked; });
    update();
  });
  form.addEventListener("change", update);
  update();
})();
