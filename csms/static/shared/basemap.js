/* The base map of the admin's and the public map pages: Leaflet over the configured tiles (the
   element's data-tiles and data-attribution) and a notice on the page when the tiles fail to load
   or none are configured. Each page draws its own markers on the map this returns. */
(function () {
  "use strict";

  window.csmsBaseMap = function (el, notice, texts) {
    var map = L.map(el, { scrollWheelZoom: false, keyboard: true }).setView([50, 10], 4);
    function tell(text) {
      if (!notice || !text) return;
      notice.hidden = false;
      notice.textContent = text;
    }
    var tiles = el.getAttribute("data-tiles");
    if (tiles) {
      var failed = false;
      L.tileLayer(tiles, { maxZoom: 19, attribution: el.getAttribute("data-attribution") || "" })
        .on("tileerror", function () {
          if (failed) return;
          failed = true;
          tell(texts.failed);
        }).addTo(map);
    } else {
      tell(texts.none);
    }
    return map;
  };
})();
