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
