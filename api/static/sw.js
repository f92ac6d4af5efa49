// The guard app's service worker (served at /sw.js with `self.WELFARE_SW` prepended).
// Precaches the offline shell and the static files. Pages are fetched from the network; when
// there is none, a guard page falls back to the offline shell, which lists the found reports
// waiting on the phone. API calls are never cached or answered from the cache.
"use strict";
const CONFIG = self.WELFARE_SW;

self.addEventListener("install", function (event) {
  event.waitUntil((async function () {
    const cache = await caches.open(CONFIG.cache);
    await cache.addAll(CONFIG.precache);
    // The shell only when signed in (else it would be the sign-in page).
    const shell = await fetch(CONFIG.shell, { credentials: "same-origin", redirect: "manual" });
    if (shell.ok && shell.type === "basic") await cache.put(CONFIG.shell, shell);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", function (event) {
  event.waitUntil((async function () {
    for (const name of await caches.keys()) {
      if (name !== CONFIG.cache) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", function (event) {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith((async function () {
      try {
        const response = await fetch(request);
        // Keep the shell fresh (its CSRF token follows the session) whenever it is visited.
        if (url.pathname === CONFIG.shell && response.ok && !response.redirected) {
          const cache = await caches.open(CONFIG.cache);
          await cache.put(CONFIG.shell, response.clone());
        }
        return response;
      } catch (error) {
        const cached = url.pathname.startsWith("/guard") ? await caches.match(CONFIG.shell) : null;
        if (cached) return cached;
        throw error;
      }
    })());
    return;
  }
  if (url.pathname.startsWith("/static/")) {
    event.respondWith((async function () {
      const cached = await caches.match(request);
      return cached || fetch(request);
    })());
  }
});

// --- alerts by push (docs/web-push.md) ---------------------------------------------------------
// The payload says what the SMS says (title, short body), the page to open, and a picture path
// behind sign-in: fetched here with the phone's session, shown if it comes back as an image,
// else the site's icon.
const ICON = "/static/icons/icon-192.png";

async function pictureFor(path) {
  if (!path) return null;
  try {
    const url = new URL(path, self.location.origin);
    if (url.origin !== self.location.origin) return null;
    const response = await fetch(url.href, { credentials: "same-origin", redirect: "error", cache: "no-store" });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("image/")) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return "data:" + type + ";base64," + btoa(binary);
  } catch (error) {
    return null;
  }
}

self.addEventListener("push", function (event) {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (error) { data = {}; }
  event.waitUntil((async function () {
    const picture = await pictureFor(data.image);
    const options = {
      body: data.body || "",
      icon: ICON,
      badge: ICON,
      tag: data.tag || undefined,
      renotify: Boolean(data.tag),
      requireInteraction: true,
      data: { url: data.url || "/guard/alerts" },
    };
    if (picture) options.image = picture;
    await self.registration.showNotification(data.title || "Welfare", options);
  })());
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  const target = new URL((event.notification.data && event.notification.data.url) || "/guard/alerts", self.location.origin);
  if (target.origin !== self.location.origin) return;
  event.waitUntil((async function () {
    const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const client of open) {
      if ("navigate" in client && "focus" in client) {
        await client.focus();
        return client.navigate(target.href);
      }
    }
    return self.clients.openWindow(target.href);
  })());
});
