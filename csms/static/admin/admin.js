/* The admin's small script: live charts (uPlot), the site map (Leaflet); the htmx settings it
   shares with the driver portal are in /static/shared/htmx_settings.js. */
(function () {
  "use strict";

  // Phones: the main navigation opens and closes with the Menu button (CSS hides it there).
  document.documentElement.classList.add("js");
  document.addEventListener("click", function (e) {
    var toggle = e.target.closest && e.target.closest(".nav-toggle");
    if (!toggle) return;
    var nav = document.getElementById(toggle.getAttribute("aria-controls"));
    if (!nav) return;
    var open = !nav.classList.contains("open");
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // After the live stream reconnects, refresh whatever may have changed meanwhile; on its first
  // open, only when the server passed on a change after this page was rendered (its hello says when).
  var streamOpened = false;
  document.addEventListener("htmx:sseOpen", function (e) {
    var source = e.detail && e.detail.source;
    if (streamOpened) {
      htmx.trigger(document.body, "live-refresh");
    } else if (source) {
      var rendered = parseFloat(document.body.getAttribute("data-rendered") || "0");
      source.addEventListener("hello", function onHello(m) {
        source.removeEventListener("hello", onHello);
        var changed = 0;
        try { changed = JSON.parse(m.data).changed || 0; } catch (err) { changed = 0; }
        if (changed >= rendered) htmx.trigger(document.body, "live-refresh");
      });
    }
    streamOpened = true;
    document.body.setAttribute("data-live", "open");  // the page hears live updates from now on
  });
  document.addEventListener("htmx:sseError", function () {
    document.body.setAttribute("data-live", "reconnecting");
  });

  // A live panel replaced by its own answer (hx-swap outerHTML) would lose an update that came
  // while its request ran: htmx queues that request (hx-sync queue last) on the old element and
  // drops it once the element has left the page. Remember the update and repeat it on the new
  // panel, so the change that came meanwhile is shown.
  var running = new WeakSet();
  var missed = {};  // panel id -> the event that triggered the request htmx would drop
  document.addEventListener("htmx:beforeRequest", function (e) {
    running.add(e.detail.elt);
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    running.delete(e.detail.elt);
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    running.delete(e.detail.elt);
  });
  document.addEventListener("htmx:confirm", function (e) {
    var elt = e.detail.elt, why = e.detail.triggeringEvent;
    if (elt.id && why && running.has(elt) && (elt.getAttribute("hx-swap") || "").indexOf("outerHTML") === 0) {
      missed[elt.id] = why.type;
    }
  });
  htmx.onLoad(function (elt) {
    if (!elt.id || !missed[elt.id]) return;
    var type = missed[elt.id];
    delete missed[elt.id];
    if (!running.has(elt)) htmx.trigger(elt, type);
  });

  // Plain (non-htmx) forms that destroy something ask first (the form's data-confirm, or that of
  // the button pressed); htmx forms ask through hx-confirm.
  document.addEventListener("submit", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("hx-post")) return;
    var msg = (e.submitter && e.submitter.getAttribute("data-confirm")) ||
      (e.target.getAttribute && e.target.getAttribute("data-confirm"));
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  function readJSON(el, attr) {
    try { return JSON.parse(el.getAttribute(attr) || "null"); } catch (err) { return null; }
  }

  function chartWidth(el) {
    return Math.max(280, el.clientWidth || el.parentElement.clientWidth || 600);
  }

  // Times are shown in the viewing user's zone (the server puts its IANA name on <body>), in the
  // same 24-hour ISO-like form as the server's |dt filter.
  function viewerZone() {
    var zone = document.body && document.body.getAttribute("data-time-zone");
    return zone || "UTC";
  }
  var zoneFormat = null;
  function formatInZone(date) {
    if (!zoneFormat) {
      try {
        zoneFormat = new Intl.DateTimeFormat("en-CA", { timeZone: viewerZone(), hourCycle: "h23", year: "numeric",
          month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
      } catch (err) {  // a zone this browser does not know: UTC, as the server's default
        zoneFormat = new Intl.DateTimeFormat("en-CA", { timeZone: "UTC", hourCycle: "h23", year: "numeric",
          month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
      }
    }
    var p = {};
    zoneFormat.formatToParts(date).forEach(function (part) { p[part.type] = part.value; });
    var lang = (document.body && document.body.getAttribute("data-language")) || "en";
    // the date as the server's |dt writes it in the page's language (csms/i18n.py, _DATE_PATTERNS)
    var day = { de: p.day + "." + p.month + "." + p.year, nl: p.day + "-" + p.month + "-" + p.year,
                fr: p.day + "/" + p.month + "/" + p.year }[lang] || (p.year + "-" + p.month + "-" + p.day);
    return day + " " + p.hour + ":" + p.minute + ":" + p.second;
  }
  window.csmsFormatTime = formatInZone;  // for tests and plugin pages
  function tzDate(ts) {
    var zone = viewerZone();
    try { return uPlot.tzDate(new Date(ts * 1e3), zone === "UTC" ? "Etc/UTC" : zone); }
    catch (err) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
  }
  function fmtDate(tpl) {
    return uPlot.fmtDate(tpl.replace(/\{M\}\/\{D\}\/\{YY\}/g, "{YYYY}-{MM}-{DD}").replace(/\{M\}\/\{D\}/g, "{MM}-{DD}")
      .replace(/\{h\}/g, "{HH}").replace(/\{aa\}/g, ""));
  }

  var COLORS = ["#1d4ed8", "#15803d", "#b45309", "#b91c1c", "#7c3aed"];

  // The y axis starts at 0 (a 0.2 kW step must not look like a cliff) unless the element says
  // data-y-zero="false" (a meter register, whose reading is far from 0); an all-zero series gets 0..1.
  function yRange(fromZero) {
    return function (u, min, max) {
      if (min == null || max == null) return [0, 1];
      var lo = fromZero ? Math.min(0, min) : min;
      var hi = fromZero ? Math.max(0, max) : max;
      if (hi === lo) return fromZero ? [lo, lo + 1] : [lo - 1, hi + 1];
      return uPlot.rangeNum(lo, hi, 0.1, true);
    };
  }

  // Time labels need room: at least 80 px between x ticks (100 px on a phone), so they never overlap.
  function xSpace(self, axisIdx, min, max, plotDim) { return plotDim < 500 ? 100 : 80; }

  function makeChart(el, data, labels, unit, xRange) {
    var series = [{}];
    labels.forEach(function (label, i) {
      series.push({ label: label, stroke: COLORS[i % COLORS.length], width: 2,
                    value: function (u, v) { return v == null ? "—" : v.toFixed(2) + " " + unit; } });
    });
    var fromZero = el.getAttribute("data-y-zero") !== "false";
    var chart = new uPlot({
      width: chartWidth(el), height: 240, series: series, tzDate: tzDate, fmtDate: fmtDate,
      scales: { x: xRange ? { time: true, range: xRange } : { time: true }, y: { range: yRange(fromZero) } },
      axes: [{ space: xSpace }, { label: unit, size: 60 }],
    }, data, el);
    var xs = data[0];
    if (!xRange && xs.length && xs[xs.length - 1] - xs[0] < 60) {
      // a single reading (or a few within a minute): five minutes either side of it, not the
      // axis over years uPlot draws for one point
      chart.setScale("x", { min: xs[0] - 300, max: xs[xs.length - 1] + 300 });
    }
    el.uplot = chart;  // for tests and the curious: the chart's scales and ticks
    window.addEventListener("resize", function () { chart.setSize({ width: chartWidth(el), height: 240 }); });
    return chart;
  }

  function initPowerChart() {
    var el = document.getElementById("power-chart");
    if (!el || el.dataset.ready || typeof uPlot === "undefined") return;
    el.dataset.ready = "1";
    var points = readJSON(el, "data-power") || [];
    var xs = points.map(function (p) { return p[0]; });
    var ys = points.map(function (p) { return p[1] / 1000; });
    // Always the last hour, so a few samples do not stretch the time axis over years.
    var lastHour = function () { var now = Date.now() / 1000; return [now - 3600, now]; };
    var chart = makeChart(el, [xs, ys], ["Power"], "kW", lastHour);
    var feed = document.getElementById("power-feed");
    if (feed) {
      feed.addEventListener("htmx:sseMessage", function (e) {
        var p;
        try { p = JSON.parse(e.detail.data); } catch (err) { return; }
        xs.push(p.t); ys.push(p.w / 1000);
        while (xs.length && xs[0] < p.t - 3600) { xs.shift(); ys.shift(); }
        chart.setData([xs, ys]);
        var now = document.getElementById("power-now-value");
        if (now) now.textContent = (p.w / 1000).toFixed(2) + " kW";
      });
    }
  }

  function initSeriesCharts(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.ready || typeof uPlot === "undefined") return;
      el.dataset.ready = "1";
      var data = readJSON(el, "data-series");
      var labels = readJSON(el, "data-labels") || [];
      if (!data || !data[0] || data[0].length === 0) {
        el.classList.add("chart-empty");
        el.textContent = el.getAttribute("data-empty") || "No samples.";
        return;
      }
      makeChart(el, data, labels, el.getAttribute("data-unit") || "");
    });
  }

  // -- map --------------------------------------------------------------------------------------
  function markerColor(s) {
    if (!s.total) return "#6b7280";
    if (s.available > 0) return "#15803d";
    if (s.faulted > 0 && s.faulted + s.offline === s.total) return "#b91c1c";
    if (s.offline === s.total) return "#6b7280";
    return "#1d4ed8";
  }

  function popupHtml(s) {
    var div = document.createElement("div");
    var a = document.createElement("a");
    a.href = "/admin/sites/" + s.id;
    a.textContent = s.name;
    var strong = document.createElement("strong");
    strong.appendChild(a);
    div.appendChild(strong);
    var p = document.createElement("div");
    p.textContent = [s.address, s.city].filter(Boolean).join(", ");
    div.appendChild(p);
    var q = document.createElement("div");
    q.textContent = s.available + " of " + s.total + " connectors available" +
      (s.faulted ? ", " + s.faulted + " faulted" : "") + (s.offline ? ", " + s.offline + " offline" : "");
    div.appendChild(q);
    return div;
  }

  function initMap() {
    var el = document.getElementById("map");
    if (!el || el.dataset.ready || typeof L === "undefined" || !window.csmsBaseMap) return;
    el.dataset.ready = "1";
    var notice = document.getElementById("map-notice");
    var map = window.csmsBaseMap(el, notice, {
      failed: "Map tiles could not be loaded; the sites are drawn on a blank map and listed below.",
      none: "No tile server is configured (CSMS_MAP_TILE_URL); the sites are drawn on a blank map.",
    });
    var layer = L.layerGroup().addTo(map);
    el.setAttribute("data-markers", "0");
    var openSite = null;  // the site whose popup is open survives a live redraw

    function draw(sites, fit) {
      var reopen = openSite;
      layer.clearLayers();
      openSite = reopen;
      var bounds = [];
      sites.forEach(function (s) {
        if (s.latitude == null || s.longitude == null) return;
        var m = L.circleMarker([s.latitude, s.longitude], {
          radius: 10, color: "#111827", weight: 1, fillColor: markerColor(s), fillOpacity: 0.9,
        });
        m.bindPopup(popupHtml(s));
        var tip = document.createElement("span");  // text, never HTML: a site's name is user input
        tip.textContent = s.name + ": " + s.available + "/" + s.total + " available";
        m.bindTooltip(tip);
        m.on("popupopen", function () { openSite = s.id; });
        m.on("popupclose", function () { if (openSite === s.id) openSite = null; });
        m.addTo(layer);
        if (m.getElement) {
          var path = m.getElement();
          if (path) { path.setAttribute("data-site", String(s.id)); path.classList.add("site-marker"); }
        }
        bounds.push([s.latitude, s.longitude]);
        if (reopen === s.id) m.openPopup();
      });
      el.setAttribute("data-markers", String(bounds.length));
      if (fit && bounds.length) map.fitBounds(bounds, { padding: [40, 40], maxZoom: 14 });
    }

    draw(readJSON(el, "data-sites") || [], true);
    var feed = document.getElementById("map-feed");
    if (feed) {
      feed.addEventListener("htmx:sseMessage", function () {
        fetch("/admin/map/sites.json", { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (sites) { if (sites) draw(sites, false); });
      });
    }
  }

  // -- last seen --------------------------------------------------------------------------------
  // <time data-seen="station id" datetime="ISO"> says how long ago the station's last frame came,
  // as the server's |ago filter does; the "seen" stream moves the time on, a timer the words.
  function agoText(iso) {
    var secs = Math.floor((Date.now() - Date.parse(iso)) / 1000);
    if (isNaN(secs)) return "never";
    if (secs < 0) return "just now";
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (secs >= units[i][1]) return Math.floor(secs / units[i][1]) + " " + units[i][0] + " ago";
    }
    return secs + " s ago";
  }

  function tickSeen() {
    document.querySelectorAll("time[data-seen]").forEach(function (el) {
      var iso = el.getAttribute("datetime");
      if (iso) el.textContent = agoText(iso);
    });
  }

  // The exact time of a live "last seen" is its tooltip, in the viewer's zone as the server's.
  function seenTitle(el, iso) {
    var when = new Date(iso);
    if (!isNaN(when.getTime())) el.setAttribute("title", formatInZone(when));
  }

  // The account page: "Use this browser's zone" fills the field with what the browser reports.
  document.querySelectorAll("[data-fill-browser-zone]").forEach(function (button) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (err) { zone = ""; }
    if (!zone) return;
    button.hidden = false;
    button.textContent = "Use this browser's zone (" + zone + ")";
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-fill-browser-zone"));
      if (input) input.value = zone;
    });
  });

  document.addEventListener("htmx:sseMessage", function (e) {
    if (!e.target.classList || !e.target.classList.contains("seen-feed")) return;
    var stations;
    try { stations = JSON.parse(e.detail.data).stations || {}; } catch (err) { return; }
    document.querySelectorAll("time[data-seen]").forEach(function (el) {
      var iso = stations[el.getAttribute("data-seen")];
      if (iso && Date.parse(iso) > Date.parse(el.getAttribute("datetime") || "1970-01-01T00:00:00Z")) {
        el.setAttribute("datetime", iso);
        el.textContent = agoText(iso);
        seenTitle(el, iso);
      }
    });
  });
  window.setInterval(tickSeen, 1000);

  // Behaviour that pages once wrote inline (the Content-Security-Policy forbids inline script and
  // event handlers): data attributes, handled here by delegation.
  document.addEventListener("focusin", function (e) {
    if (e.target.matches && e.target.matches("[data-select-on-focus]")) e.target.select();
  });
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("[data-submit-on-change]") && e.target.form) e.target.form.requestSubmit();
  });
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-print]") : null;
    if (el) { window.print(); return; }
    el = e.target.closest ? e.target.closest("[data-desktop-notifications]") : null;
    if (el && "Notification" in window) {
      Notification.requestPermission().then(function () { el.hidden = true; });
    }
  });
  function initDesktopNotifications(root) {
    if (!("Notification" in window) || Notification.permission !== "default") return;
    (root.querySelectorAll ? root : document).querySelectorAll("[data-desktop-notifications]").forEach(function (b) { b.hidden = false; });
  }
  document.body.addEventListener("htmx:sseMessage", function (e) {
    if (!("Notification" in window) || !e.detail || e.detail.type !== "notification" || Notification.permission !== "granted") return;
    var holder = document.createElement("template"); holder.innerHTML = e.detail.data;  // inert: nothing loads or runs
    var li = holder.content.firstElementChild;
    if (li) { new Notification(li.dataset.title || "CSMS", { tag: li.dataset.event }); }
  });

  // A per-phase bar chart (uPlot) of the element's data-phase-bars JSON (the load-balancing
  // plugin's site panel): capacity, allocation and measured draw per phase.
  function initPhaseBars(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-phase-bars]").forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-phase-bars"));
      if (!window.uPlot || !src || el.getAttribute("data-drawn")) return;
      el.setAttribute("data-drawn", "1");
      var d = JSON.parse(src.textContent);
      var bars = uPlot.paths.bars({size: [0.25, 40], align: 0});
      var val = function (a) { return a.map(function (v) { return v === null ? 0 : v; }); };
      new uPlot({width: Math.min(480, chartWidth(el)), height: 220, scales: {x: {time: false, range: [0.5, 3.5]}},
        axes: [{values: function (u, ticks) { return ticks.map(function (t) { return d.phases[Math.round(t) - 1] || ""; }); },
                splits: function () { return [1, 2, 3]; }}, {label: "A"}],
        series: [{}, {label: "capacity (last round)", stroke: "#888", fill: "#8884", paths: bars},
                 {label: "allocated (last round)", stroke: "#36c", fill: "#36c4", paths: bars},
                 {label: "measured", stroke: "#c63", fill: "#c634", paths: bars}]},
        [[1, 2, 3], val(d.capacity), val(d.allocated), val(d.measured)], el);
    });
  }

  function init(root) {
    initPhaseBars(root);
    initDesktopNotifications(root);
    initPowerChart();
    initSeriesCharts(root);
    initMap();
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (e) { initSeriesCharts(e.target); initDesktopNotifications(e.target); });
})();
