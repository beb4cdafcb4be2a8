// Targets picked by name (issue 20): search while typing (GET /panel/targets.json?q=), tick a
// result to make it a chip, and choose "by name" as the target. The form works without this.
(function () {
  "use strict";
  document.querySelectorAll("[data-picker]").forEach(function (box) {
    var form = box.closest("form");
    var input = box.querySelector(".picker-q");
    var results = box.querySelector(".picker-results");
    var picked = box.querySelector(".picker-picked");
    var timer = null;
    function choosePicked() {
      var radio = form && form.querySelector('input[name="target"][value="picked"]');
      if (radio) radio.checked = true;
    }
    function pickedKeys() {
      var keys = {};
      picked.querySelectorAll('input[name="pick"]').forEach(function (c) { keys[c.value] = true; });
      return keys;
    }
    function row(item, checked) {
      var label = document.createElement("label");
      label.className = checked ? "chip" : "opt";
      var box_ = document.createElement("input");
      box_.type = "checkbox"; box_.name = "pick"; box_.value = item.key; box_.checked = checked;
      var kind = document.createElement("span");
      kind.className = "muted"; kind.textContent = item.kind_label;
      label.appendChild(box_); label.appendChild(document.createTextNode(" "));
      label.appendChild(kind); label.appendChild(document.createTextNode(" " + item.label));
      return label;
    }
    function search() {
      var url = "/panel/targets.json?stations=" + box.getAttribute("data-stations") +
        "&q=" + encodeURIComponent(input.value);
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          var have = pickedKeys();
          results.textContent = "";
          data.results.forEach(function (item) { if (!have[item.key]) results.appendChild(row(item, false)); });
          if (!results.children.length && input.value) {
            var none = document.createElement("p");
            none.className = "muted picker-none"; none.textContent = data.none;
            results.appendChild(none);
          }
        });
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, 250);
    });
    input.addEventListener("keydown", function (e) {  // Enter searches here, never sends the form
      if (e.key === "Enter") { e.preventDefault(); clearTimeout(timer); search(); }
    });
    results.addEventListener("change", function (e) {
      var c = e.target;
      if (c.name !== "pick" || !c.checked) return;
      var label = c.closest("label");
      label.className = "chip";
      picked.appendChild(label);
      choosePicked();
    });
  });
})();
