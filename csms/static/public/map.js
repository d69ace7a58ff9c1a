/* The public map: published locations as markers over Leaflet; the list on the page is the
   same data and works without this script or the tiles. Refreshes from the GeoJSON feed. */
(function () {
  "use strict";

  function color(p) {
    if (!p.connectors) return "#6b7280";
    if (p.available > 0) return "#15803d";
    if (p.out_of_order > 0 && p.out_of_order + p.offline === p.connectors) return "#b91c1c";
    if (p.offline === p.connectors) return "#6b7280";
    return "#1d4ed8";
  }

  function popup(p) {  // built from text nodes: names and addresses are operator input
    var div = document.createElement("div");
    var a = document.createElement("a");
    a.href = p.url;
    a.textContent = p.name;
    var strong = document.createElement("strong");
    strong.appendChild(a);
    div.appendChild(strong);
    var addr = document.createElement("div");
    addr.textContent = [p.address, [p.postal_code, p.city].filter(Boolean).join(" ")].filter(Boolean).join(", ");
    div.appendChild(addr);
    var free = document.createElement("div");
    free.textContent = p.available + " of " + p.connectors + " connectors free";
    div.appendChild(free);
    return div;
  }

  function init() {
    var el = document.getElementById("public-map");
    if (!el || typeof L === "undefined" || !window.csmsBaseMap) return;
    var notice = document.getElementById("map-notice");
    var map = window.csmsBaseMap(el, notice, {
      failed: "Map tiles could not be loaded; the locations are drawn on a blank map and listed below.",
    });
    var layer = L.layerGroup().addTo(map);

    function draw(collection, fit) {
      layer.clearLayers();
      var bounds = [];
      (collection.features || []).forEach(function (f) {
        var p = f.properties, ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
        var m = L.circleMarker(ll, { radius: 11, color: "#111827", weight: 1, fillColor: color(p), fillOpacity: 0.9 });
        m.bindPopup(popup(p));
        var tip = document.createElement("span");
        tip.textContent = p.name + ": " + p.available + "/" + p.connectors + " free";
        m.bindTooltip(tip);
        m.addTo(layer);
        var path = m.getElement && m.getElement();
        if (path) { path.setAttribute("data-site", String(p.id)); path.classList.add("site-marker"); }
        bounds.push(ll);
      });
      el.setAttribute("data-markers", String(bounds.length));
      if (fit && bounds.length) map.fitBounds(bounds, { padding: [40, 40], maxZoom: 15 });
    }

    var data = null;
    try { data = JSON.parse(el.getAttribute("data-features") || "null"); } catch (err) { data = null; }
    draw(data || { features: [] }, true);
    if (!el.classList.contains("pm-map-small")) {
      setInterval(function () {  // the browser's cache sends If-None-Match; 304s cost nothing
        fetch("/map/stations.geojson").then(function (r) { return r.ok ? r.json() : null; })
          .then(function (fc) { if (fc) draw(fc, false); }).catch(function () {});
      }, 60000);
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
