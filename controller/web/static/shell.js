// communecast panel shell: the phone menu and the service worker. Loaded in <head> without
// `defer` so that the `js` class is set before the first paint: without it (no JavaScript)
// the menu stays open as plain links, with it the phone layout folds the links behind the
// "Menu" button (aria-expanded says which). No libraries.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  if ("serviceWorker" in navigator && window.isSecureContext) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () { /* the panel works without */ });
    });
  }

  function menu() {
    var button = document.getElementById("menu-button");
    var header = document.querySelector(".top");
    if (!button || !header) return;
    function set(open) {
      header.classList.toggle("menu-open", open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.addEventListener("click", function () { set(button.getAttribute("aria-expanded") !== "true"); });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && button.getAttribute("aria-expanded") === "true") { set(false); button.focus(); }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", menu);
  else menu();
})();
