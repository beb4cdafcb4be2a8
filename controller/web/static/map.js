// communecast panel: the stations map (Leaflet + markercluster from /panel-vendor/, when
// installed) and the position fields ("use my location", pick on the map). Without Leaflet
// the server's SVG map and the plain inputs stay as they are.
(function () {
  "use strict";
  var L = window.L;

  function baseMap(el) {
    // maxZoom on the map itself: without a tile layer nothing else sets it, and clustering needs it.
    var map = L.map(el, { zoomControl: true, attributionControl: true, maxZoom: 19, minZoom: 3 });
    var tiles = el.getAttribute("data-tiles");
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 19, attribution: el.getAttribute("data-attribution") || "" }).addTo(map);
    } else {
      el.classList.add("no-tiles");  // a plain background: the markers carry the picture
    }
    return map;
  }

  function markerIcon(station, label) {
    var box = document.createElement("span");
    box.className = "mk mk-" + station.state;
    var dot = document.createElement("span");
    dot.className = "mk-dot mk-" + station.state;
    var name = document.createElement("span");
    name.className = "mk-name";
    name.textContent = station.name;  // text, never HTML: names are typed by people
    box.appendChild(dot);
    box.appendChild(name);
    box.setAttribute("data-station-id", String(station.id));
    box.setAttribute("title", station.name + " · " + station.commune + " · " + label);
    return L.divIcon({ html: box, className: "mk-icon", iconSize: null, iconAnchor: [7, 7] });
  }

  function clusterIcon(cluster) {
    var worst = "online";
    cluster.getAllChildMarkers().forEach(function (m) {
      var st = m.options.stationState;
      if (st === "alarm" || (st === "offline" && worst === "online")) worst = st;
    });
    var box = document.createElement("span");
    box.className = "mk-cluster mk-" + worst;
    box.textContent = String(cluster.getChildCount());
    return L.divIcon({ html: box, className: "mk-icon", iconSize: L.point(34, 34) });
  }

  function stationMap() {
    var el = document.getElementById("station-map");
    if (!el || !L) return;
    fetch(el.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        if (!data.stations.length) return;  // the page already says there is none
        el.hidden = false;
        var plain = document.getElementById("plain-map");
        if (plain) plain.hidden = true;
        var map = baseMap(el);
        var group = L.markerClusterGroup ? L.markerClusterGroup({
          iconCreateFunction: clusterIcon, disableClusteringAtZoom: 16, maxClusterRadius: 40,
          showCoverageOnHover: false
        }) : L.featureGroup();
        var bounds = [];
        data.stations.forEach(function (st) {
          var label = el.getAttribute("data-" + st.state) || st.state;
          var marker = L.marker([st.lat, st.lon], { icon: markerIcon(st, label), stationState: st.state,
                                                    title: st.name, keyboard: true });
          marker.on("click", function () { window.location.href = st.href; });
          group.addLayer(marker);
          bounds.push([st.lat, st.lon]);
        });
        map.fitBounds(bounds, { padding: [30, 30], maxZoom: 16 });  // a view first: clustering needs a zoom
        map.addLayer(group);
        el.setAttribute("data-ready", String(data.stations.length));
      })
      .catch(function (err) {  // the SVG map stays
        if (window.console) console.error("map:", err);
        var plain = document.getElementById("plain-map");
        if (plain) { plain.hidden = false; el.hidden = true; }
      });
  }

  function positionFields() {
    document.querySelectorAll("[data-position]").forEach(function (box) {
      var lat = box.querySelector('input[name="lat"]');
      var lon = box.querySelector('input[name="lon"]');
      var status = box.querySelector("[data-geo-status]");
      var pickEl = box.querySelector("[data-pick-map]");
      var pin = null;
      var map = null;

      function number(input) {
        var v = parseFloat(String(input.value).replace(",", "."));
        return isFinite(v) ? v : null;
      }
      function place(la, lo, zoom) {
        lat.value = la.toFixed(6);
        lon.value = lo.toFixed(6);
        if (!map) return;
        if (pin) pin.setLatLng([la, lo]); else pin = L.marker([la, lo], {
          icon: L.divIcon({ html: '<span class="mk-dot mk-pin"></span>', className: "mk-icon", iconAnchor: [7, 7] })
        }).addTo(map);
        map.setView([la, lo], zoom || map.getZoom());
      }

      if (pickEl && L) {
        map = baseMap(pickEl);
        var la = number(lat), lo = number(lon);
        if (la !== null && lo !== null) place(la, lo, 16);
        else map.setView([16.0, 106.0], 5);  // Việt Nam, until a position is known
        map.on("click", function (ev) { place(ev.latlng.lat, ev.latlng.lng); });
      }

      var button = box.querySelector("[data-geolocate]");
      if (!button || !navigator.geolocation) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        status.textContent = status.getAttribute("data-wait");
        navigator.geolocation.getCurrentPosition(function (pos) {
          place(pos.coords.latitude, pos.coords.longitude, 17);
          status.textContent = status.getAttribute("data-done");
        }, function () {
          status.textContent = status.getAttribute("data-denied");
        }, { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 });
      });
    });
  }

  function start() {
    stationMap();
    positionFields();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
