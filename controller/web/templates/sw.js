// communecast panel service worker (served at /sw.js by controller/web/routes_app.py).
// Caches the app shell only (CSS, JS, icons, the offline page). Pages are always fetched
// from the network; when it is gone the offline page says so: never an old page shown as
// if it were current. /api/ requests are not touched at all (never cached, never answered
// from a cache). Shell version {{ version }}.
"use strict";
var CACHE = "cc-shell-{{ version }}";
var SHELL = {{ shell|tojson }};
var OFFLINE = {{ offline|tojson }};

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.addAll(SHELL.map(function (u) { return new Request(u, { cache: "reload" }); }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k.indexOf("cc-shell-") === 0 && k !== CACHE; })
      .map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var req = event.request;
  var url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.indexOf("/api/") === 0) return;  // the network's answer or the network's error
  if (req.mode === "navigate") {
    event.respondWith(fetch(req).catch(function () {
      return caches.open(CACHE).then(function (cache) { return cache.match(OFFLINE); });
    }));
    return;
  }
  if (SHELL.indexOf(url.pathname) < 0 || url.search) return;
  // Shell files: the network first (a fresh release), the cached copy when offline.
  event.respondWith(fetch(req).then(function (resp) {
    if (resp.ok) {
      var copy = resp.clone();
      caches.open(CACHE).then(function (cache) { return cache.put(url.pathname, copy); });
    }
    return resp;
  }).catch(function () {
    return caches.open(CACHE).then(function (cache) { return cache.match(url.pathname); });
  }));
});
