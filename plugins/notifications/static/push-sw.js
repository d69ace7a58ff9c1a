/* The driver portal's service worker (scope /driver/): shows the CSMS's push notifications
   (JSON: title, body, url, tag) and opens the notification's page when it is tapped. */
"use strict";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener("push", function (event) {
  var msg = {};
  if (event.data) {
    try { msg = event.data.json(); } catch (e) { msg = { body: event.data.text() }; }
  }
  var url = typeof msg.url === "string" && msg.url.indexOf("/driver/") === 0 ? msg.url : "/driver/sessions";
  event.waitUntil(self.registration.showNotification(msg.title || "⚡", {
    body: msg.body || "", tag: msg.tag || undefined, renotify: !!msg.tag, data: { url: url, event: msg.event || "" },
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = new URL((event.notification.data && event.notification.data.url) || "/driver/sessions",
                    self.location.origin).href;
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].url === url && "focus" in list[i]) return list[i].focus();
    }
    return self.clients.openWindow(url);
  }));
});
