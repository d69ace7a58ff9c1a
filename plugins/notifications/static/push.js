/* The driver portal's "Push notifications on this device": registers the service worker,
   subscribes with the installation's VAPID key and tells the CSMS (the portal's CSRF header);
   turns them off again. Texts come from the section's data-msg-* attributes (translated). */
(function () {
  "use strict";
  var box = document.getElementById("push");
  if (!box) return;
  var state = document.getElementById("push-state");
  var on = document.getElementById("push-on");
  var off = document.getElementById("push-off");

  function say(name, reason) {
    var text = box.getAttribute("data-msg-" + name) || "";
    state.textContent = reason ? text.replace("%(reason)s", reason) : text;
    box.setAttribute("data-state", name);
  }
  function keyBytes(b64) {
    var s = (b64 + "===".slice((b64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(s), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function sameKey(buffer, bytes) {
    if (!buffer) return false;
    var a = new Uint8Array(buffer);
    if (a.length !== bytes.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== bytes[i]) return false;
    return true;
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "x-csrftoken": box.getAttribute("data-csrf") },
    }).then(function (response) {
      if (response.ok) return response.json();
      return response.json().catch(function () { return {}; }).then(function (problem) {
        throw new Error(problem.detail || ("HTTP " + response.status));
      });
    });
  }
  function known(endpoint) {
    var rows = document.querySelectorAll(".device[data-endpoint]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute("data-endpoint") === endpoint) return rows[i];
    }
    return null;
  }
  function show(subscription) {
    var row = subscription && known(subscription.endpoint);
    if (row) row.querySelector(".this-device").hidden = false;
    on.hidden = !!row;
    off.hidden = !row;
    say(row ? "on" : "off");
  }
  function failed(error) {
    on.disabled = off.disabled = false;
    say(Notification.permission === "denied" ? "denied" : "failed", error && error.message ? error.message : String(error));
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("unsupported");
    return;
  }
  var key = keyBytes(box.getAttribute("data-key"));
  var ready = navigator.serviceWorker.register("/driver/push-sw.js", { scope: "/driver/" }).then(function () {
    return navigator.serviceWorker.ready;
  });

  ready.then(function (registration) {
    return registration.pushManager.getSubscription();
  }).then(function (subscription) {
    if (Notification.permission === "denied") { say("denied"); on.hidden = true; return; }
    show(subscription);
  }).catch(failed);

  on.addEventListener("click", function () {
    on.disabled = true;
    say("working");
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") throw new Error(box.getAttribute("data-msg-denied"));
      return ready;
    }).then(function (registration) {
      return registration.pushManager.getSubscription().then(function (existing) {
        if (existing && sameKey(existing.options.applicationServerKey, key)) return existing;
        var renewed = existing ? existing.unsubscribe() : Promise.resolve();
        return renewed.then(function () {
          return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
        });
      });
    }).then(function (subscription) {
      var body = subscription.toJSON();
      body.language = document.documentElement.lang || "";
      return post("/driver/notifications/push", body);
    }).then(function () {
      window.location.assign("/driver/notifications?done=on");
    }).catch(failed);
  });

  off.addEventListener("click", function () {
    off.disabled = true;
    say("working");
    ready.then(function (registration) {
      return registration.pushManager.getSubscription();
    }).then(function (subscription) {
      if (!subscription) return null;
      var endpoint = subscription.endpoint;
      return subscription.unsubscribe().then(function () {
        return post("/driver/notifications/push/unsubscribe", { endpoint: endpoint });
      });
    }).then(function () {
      window.location.assign("/driver/notifications?done=off");
    }).catch(failed);
  });
})();
