// The guard app: offline queue of found reports, GPS, tag scanning, live incident status.
// Strings come translated from the page (JSON blocks). A queued report holds ids, the condition
// and what the guard typed; a photo the guard took waits in IndexedDB (a Blob does not fit in
// localStorage) until its report has an incident to go to, and is deleted once sent or refused.
"use strict";
(function () {
  const QUEUE_KEY = "welfare.foundQueue.v1";
  const SEND_TIMEOUT_MS = 15000;
  const POLL_MS = 2000;

  function readJson(id) {
    const node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }
  const words = readJson("queue-words") || {};
  function fill(text, values) {
    return String(text || "").replace(/%\((\w+)\)s/g, function (_m, key) {
      return values && values[key] !== undefined ? String(values[key]) : "";
    });
  }

  // --- service worker: the offline shell -------------------------------------------------------
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () { /* optional */ });
  }

  // --- the queue of found reports --------------------------------------------------------------
  function loadQueue() {
    try {
      const items = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(items) ? items : [];
    } catch (e) { return []; }
  }
  function saveQueue(items) {
    localStorage.setItem(QUEUE_KEY, JSON.stringify(items));
  }
  function enqueue(body) {
    const items = loadQueue().filter(function (item) { return item.id !== body.client_request_id; });
    items.push({ id: body.client_request_id, body: body, queuedAt: new Date().toISOString() });
    saveQueue(items);
  }
  function dequeue(id) {
    saveQueue(loadQueue().filter(function (item) { return item.id !== id; }));
  }

  // --- photos waiting for their report (keyed by the report's client_request_id) --------------
  const PHOTO_DB = "welfare.photos.v1";
  const PHOTO_STORE = "photos";
  const memoryPhotos = {}; // where IndexedDB is missing (some private windows): this page only
  function photoStore(mode, action) {
    return new Promise(function (resolve, reject) {
      if (!window.indexedDB) { reject(new Error("no IndexedDB")); return; }
      const opening = indexedDB.open(PHOTO_DB, 1);
      opening.onupgradeneeded = function () { opening.result.createObjectStore(PHOTO_STORE, { keyPath: "id" }); };
      opening.onerror = function () { reject(opening.error); };
      opening.onsuccess = function () {
        const db = opening.result;
        const tx = db.transaction(PHOTO_STORE, mode);
        const request = action(tx.objectStore(PHOTO_STORE));
        tx.oncomplete = function () { db.close(); resolve(request ? request.result : undefined); };
        tx.onerror = tx.onabort = function () { db.close(); reject(tx.error); };
      };
    });
  }
  async function keepPhoto(record) {
    try {
      await photoStore("readwrite", function (store) { return store.put(record); });
      delete memoryPhotos[record.id];
      return true;
    } catch (e) {
      memoryPhotos[record.id] = record;
      return false;
    }
  }
  async function photoFor(id) {
    if (memoryPhotos[id]) return memoryPhotos[id];
    try { return (await photoStore("readonly", function (store) { return store.get(id); })) || null; } catch (e) { return null; }
  }
  async function allPhotos() {
    let stored = [];
    try { stored = (await photoStore("readonly", function (store) { return store.getAll(); })) || []; } catch (e) { /* none */ }
    return stored.concat(Object.keys(memoryPhotos).map(function (k) { return memoryPhotos[k]; }));
  }
  async function dropPhoto(id) {
    delete memoryPhotos[id];
    try { await photoStore("readwrite", function (store) { return store.delete(id); }); } catch (e) { /* gone */ }
  }

  // A phone photo is often several MB: send at most 1600 px as JPEG (the server re-encodes it
  // anyway and drops EXIF/GPS). If the browser cannot, the file goes as it is.
  async function shrink(file) {
    try {
      if (!window.createImageBitmap) return file;
      const bitmap = await createImageBitmap(file);
      const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      if (bitmap.close) bitmap.close();
      const blob = await new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", 0.85); });
      return blob && blob.size && blob.size < file.size ? blob : file;
    } catch (e) {
      return file;
    }
  }

  // "added", "waiting" (no signal: kept for the next round) or why it was refused.
  async function sendPhoto(record) {
    const controller = new AbortController();
    const timer = setTimeout(function () { controller.abort(); }, SEND_TIMEOUT_MS * 2);
    let response;
    try {
      response = await fetch("/api/v1/incidents/" + record.incidentId + "/photo", {
        method: "PUT",
        credentials: "same-origin",
        signal: controller.signal,
        headers: { "Content-Type": record.blob.type || "application/octet-stream", Accept: "application/json", "X-CSRF-Token": window.welfare.csrf },
        body: record.blob,
      });
    } catch (e) {
      return "waiting";
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) { await dropPhoto(record.id); return "added"; }
    if (isTransient({ status: response.status })) return "waiting";
    await dropPhoto(record.id);
    if (response.status === 415) return "unsupported";
    if (response.status === 413) return "too_large";
    if (response.status === 422) return "unreadable";
    return "refused";
  }

  // Photos whose report went through earlier but which could not be sent then.
  async function flushPhotos() {
    const queued = loadQueue().map(function (item) { return item.id; });
    for (const record of await allPhotos()) {
      if (record.incidentId) {
        if (await sendPhoto(record) === "waiting") break;
      } else if (queued.indexOf(record.id) < 0 && Date.now() - record.keptAt > 86400000) {
        await dropPhoto(record.id); // its report was refused a day ago: nothing to attach it to
      }
    }
  }

  function banner(message, ok, link) {
    const node = document.getElementById("queue-banner");
    if (!node) return;
    node.textContent = message || "";
    if (link) {
      node.appendChild(document.createTextNode(" "));
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = words.open || "Open";
      node.appendChild(anchor);
    }
    node.classList.toggle("ok", Boolean(ok));
    node.hidden = !message;
  }
  function showWaiting() {
    const count = loadQueue().length;
    if (count) banner(fill(words.waiting, { count: count }), false);
    const list = document.getElementById("queue-list");
    if (list) {
      list.textContent = "";
      loadQueue().forEach(function (item) {
        const row = document.createElement("p");
        row.className = "muted";
        row.textContent = new Date(item.queuedAt).toLocaleTimeString() + " · " + (item.body.condition || "");
        list.appendChild(row);
      });
    }
    return count;
  }

  // A network failure or a server that is not answering: keep the report and retry.
  function isTransient(error) {
    const status = error && error.status;
    return !status || status >= 500 || status === 401 || status === 403 || status === 408 || status === 429;
  }

  async function send(body) {
    const controller = new AbortController();
    const timer = setTimeout(function () { controller.abort(); }, SEND_TIMEOUT_MS);
    try {
      const response = await fetch("/api/v1/incidents", {
        method: "POST",
        credentials: "same-origin",
        signal: controller.signal,
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": window.welfare.csrf },
        body: JSON.stringify(body),
      });
      const data = await response.json().catch(function () { return null; });
      if (!response.ok) {
        const detail = data && data.detail;
        const error = new Error(typeof detail === "string" ? detail
          : Array.isArray(detail) ? detail.map(function (d) { return d.msg; }).join("; ") : String(response.status));
        error.status = response.status;
        throw error;
      }
      return data;
    } finally {
      clearTimeout(timer);
    }
  }

  let flushing = false;
  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      const form = document.querySelector("[data-found-form]");
      const waitingFor = form ? form.elements.client_request_id.value : null;
      for (const item of loadQueue()) {
        try {
          const incident = await send(item.body);
          dequeue(item.id);
          let url = "/guard/incidents/" + incident.id;
          const photo = await photoFor(item.id);
          if (photo) {
            photo.incidentId = incident.id;
            const kept = await keepPhoto(photo);
            let outcome = await sendPhoto(photo);
            // Held by this page only: leaving it would lose the photo, so say so.
            if (outcome === "waiting" && !kept) { await dropPhoto(photo.id); outcome = "not_kept"; }
            url += "?photo=" + encodeURIComponent(outcome);
          }
          if (item.id === waitingFor) {
            window.location.assign(url);
            return;
          }
          banner(words.sent, true, url);
        } catch (error) {
          if (isTransient(error)) break;
          dequeue(item.id);
          banner(fill(words.refused, { reason: error.message }), false);
          // Refused (not lost): the guard may correct the form and send it again.
          if (item.id === waitingFor) form.querySelector('button[type="submit"]').disabled = false;
        }
      }
      if (navigator.onLine !== false) await flushPhotos();
      showWaiting();
    } finally {
      flushing = false;
    }
  }
  window.addEventListener("online", flush);
  setInterval(function () { if (navigator.onLine !== false) flush(); }, 15000);

  // --- the found form --------------------------------------------------------------------------
  const foundForm = document.querySelector("[data-found-form]");
  if (foundForm) {
    const idField = foundForm.elements.client_request_id;
    if (!idField.value && window.crypto && crypto.randomUUID) idField.value = crypto.randomUUID();

    const photoInput = foundForm.querySelector("[data-photo-input]");
    foundForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const f = foundForm.elements;
      const checked = foundForm.querySelector('input[name="condition"]:checked');
      const number = function (v) { return v === "" ? null : Number(v); };
      const text = function (name) { return f[name] ? f[name].value.trim() || null : null; };
      const body = {
        kind: "found",
        condition: checked ? checked.value : "well",
        location: text("location"),
        latitude: number(f.latitude.value),
        longitude: number(f.longitude.value),
        note: text("note"),
        client_request_id: idField.value,
      };
      if (foundForm.dataset.residentId) body.resident_id = foundForm.dataset.residentId;
      if (f.description) body.description = text("description");
      if (f.site_id && f.site_id.value) body.site_id = f.site_id.value;
      const submit = foundForm.querySelector('button[type="submit"]');
      submit.disabled = true;
      banner(words.sending, false);
      // The photo is kept first, so whichever round sends the report finds it.
      const file = photoInput && photoInput.files && photoInput.files[0];
      let photoKept = true;
      if (file) {
        const blob = await shrink(file);
        photoKept = await keepPhoto({ id: idField.value, blob: blob, incidentId: null, keptAt: Date.now() });
      }
      // Kept on the phone first: a report is never lost to a dropped connection.
      enqueue(body);
      if (navigator.onLine === false) {
        showWaiting();
        if (file) banner(photoKept ? words.photo_waiting : words.photo_not_kept, false);
        return;
      }
      flush().then(function () {
        if (loadQueue().some(function (item) { return item.id === idField.value; })) {
          showWaiting();
          if (file && !photoKept) banner(words.photo_not_kept, false);
        }
      });
    });

    const preview = foundForm.querySelector("[data-photo-preview]");
    if (photoInput && preview) {
      photoInput.addEventListener("change", function () {
        if (preview.src) URL.revokeObjectURL(preview.src);
        const chosen = photoInput.files && photoInput.files[0];
        preview.hidden = !chosen;
        if (chosen) preview.src = URL.createObjectURL(chosen);
      });
    }

    const gpsButton = foundForm.querySelector("[data-gps]");
    const gpsState = foundForm.querySelector("[data-gps-state]");
    function locate() {
      if (!("geolocation" in navigator)) {
        if (gpsButton) gpsButton.hidden = true;
        return;
      }
      navigator.geolocation.getCurrentPosition(function (position) {
        foundForm.elements.latitude.value = position.coords.latitude.toFixed(6);
        foundForm.elements.longitude.value = position.coords.longitude.toFixed(6);
        if (gpsState) gpsState.textContent = words.located;
        if (gpsButton) gpsButton.hidden = true;
      }, function () {
        if (gpsState) gpsState.textContent = words.no_location;
      }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
    }
    if (gpsButton) gpsButton.addEventListener("click", locate);
    // Ask at once only where the permission is already granted (no surprise prompt).
    if (navigator.permissions && navigator.permissions.query) {
      navigator.permissions.query({ name: "geolocation" }).then(function (p) {
        if (p.state === "granted") locate();
      }).catch(function () { /* ignore */ });
    }
  }

  // --- scanning a tag --------------------------------------------------------------------------
  const startButton = document.getElementById("scan-start");
  if (startButton) {
    const message = document.getElementById("scan-message");
    const say = function (text) { message.textContent = text; message.hidden = !text; };
    if (!("BarcodeDetector" in window) || !navigator.mediaDevices) {
      say(words.no_camera);
    } else {
      startButton.hidden = false;
      startButton.addEventListener("click", async function () {
        let stream;
        try {
          stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
        } catch (e) {
          say(words.camera_denied);
          return;
        }
        startButton.hidden = true;
        document.getElementById("scanner").hidden = false;
        const video = document.getElementById("scan-video");
        video.srcObject = stream;
        await video.play();
        const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        const tick = async function () {
          try {
            const codes = await detector.detect(video);
            if (codes.length) {
              stream.getTracks().forEach(function (t) { t.stop(); });
              window.location.assign("/guard/scan?code=" + encodeURIComponent(codes[0].rawValue));
              return;
            }
          } catch (e) { /* a frame that could not be read */ }
          setTimeout(tick, 250);
        };
        tick();
      });
    }
  }

  // --- the live incident page ------------------------------------------------------------------
  const live = readJson("live-data");
  if (live) {
    const statusNode = document.getElementById("incident-status");
    const updated = document.getElementById("live-updated");
    const w = live.words;
    const relationship = {};
    live.contacts.forEach(function (c) { relationship[c.id] = c.relationship; });
    let wasClosed = null;

    const smsState = function (n) {
      const p = n.provider_status;
      if (p === "delivered" || p === "read") return [w.sms_delivered, "ok"];
      if (n.status === "failed" || p === "failed" || p === "undelivered") return [w.sms_failed, "bad"];
      if (n.status === "sent") return [w.sms_sent, ""];
      if (n.status === "pending" || n.status === "claimed" || n.status === "sending") return [w.sms_queued, ""];
      return null;
    };
    const callState = function (n) {
      const p = n.provider_status;
      if (p === "in-progress" || p === "answered") return [w.on_call, "busy"];
      if (p === "no-answer" || p === "busy" || p === "canceled") return [w.no_answer, "bad"];
      if (p === "completed") return [w.call_ended, "bad"];
      if (n.status === "failed" || p === "failed") return [w.call_failed, "bad"];
      if (n.status === "sent" || n.status === "sending" || p === "ringing" || p === "initiated" || p === "queued") {
        return [w.calling, "busy"];
      }
      return null;
    };
    const pushState = function (n) {
      if (n.status === "failed") return [w.push_failed, "bad"];
      if (n.status === "sent") return [w.push_sent, ""];
      if (n.status === "pending" || n.status === "claimed" || n.status === "sending") return [w.push_queued, ""];
      return null;
    };
    function stateOf(messages, confirmed) {
      if (confirmed) return [[w.confirmed, "ok"]];
      const parts = [];
      const lastOf = function (channel) {
        const list = messages.filter(function (m) { return m.channel === channel && m.status !== "cancelled"; });
        return list.length ? list[list.length - 1] : null;
      };
      const sms = lastOf("sms");
      const call = lastOf("voice");
      const pushed = lastOf("push");
      if (call) { const s = callState(call); if (s) parts.push(s); }
      if (pushed && !(sms && pushed.status === "failed")) { const s = pushState(pushed); if (s) parts.push(s); }
      if (sms) { const s = smsState(sms); if (s) parts.push(s); }
      return parts.length ? parts : [[w.not_contacted, ""]];
    }
    function paint(node, parts) {
      const target = node.querySelector("[data-contact-state]");
      target.textContent = "";
      parts.forEach(function (part, i) {
        if (i) target.appendChild(document.createTextNode(" · "));
        const span = document.createElement("span");
        span.className = "contact-state " + part[1];
        span.textContent = part[0];
        target.appendChild(span);
      });
    }
    function render(incident) {
      const notes = incident.notifications || [];
      document.querySelectorAll("[data-contact-id]").forEach(function (node) {
        const id = node.dataset.contactId;
        const mine = notes.filter(function (n) { return n.contact_id === id; });
        paint(node, stateOf(mine, incident.confirmed_contact_id === id));
      });
      const managerNotes = notes.filter(function (n) { return n.recipient === "duty_manager"; });
      const manager = document.querySelector("[data-duty-manager]");
      if (manager && managerNotes.length) {
        manager.hidden = false;
        paint(manager, stateOf(managerNotes, incident.confirmed_via === "manager"));
      }
      // The missing alert went to the guards on duty, not to the duty manager.
      const guardNotes = notes.filter(function (n) { return n.recipient === "guard"; });
      const guards = document.querySelector("[data-guards-alert]");
      if (guards && guardNotes.length) {
        guards.hidden = false;
        paint(guards, stateOf(guardNotes, false));
      }
      let label = live.statuses[incident.status] || incident.status;
      if (incident.status === "confirmed" && relationship[incident.confirmed_contact_id]) {
        label = fill(w.coming, { who: relationship[incident.confirmed_contact_id] });
      }
      statusNode.textContent = label;
      statusNode.className = "incident-status status-" + incident.status;
      updated.textContent = fill(w.updated, { time: new Date().toLocaleTimeString() });
      const closed = incident.status === "resolved" || incident.status === "cancelled";
      if (wasClosed === false && closed) window.location.reload();
      wasClosed = closed;
    }
    async function poll() {
      try {
        render(await window.welfare.api("GET", "/api/v1/incidents/" + live.incident_id));
      } catch (e) {
        updated.textContent = w.connection_lost;
      }
      setTimeout(poll, POLL_MS);
    }
    poll();
  }

  if (loadQueue().length) showWaiting();
  if (navigator.onLine !== false) flush();

  // --- alerts by push on this phone (docs/web-push.md) ----------------------------------------
  // Permission is asked only when the guard taps the button; the subscription goes to
  // /api/v1/me/push-subscriptions, and its id stays here so "Turn off" can remove it.
  const PUSH_ID_KEY = "welfare.pushSubscriptionId.v1";
  const pushBox = document.getElementById("push-alerts");
  if (pushBox && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window && window.isSecureContext) {
    const pushState = document.getElementById("push-state");
    const pushOn = document.getElementById("push-on");
    const pushOff = document.getElementById("push-off");
    function showPush(on, message) {
      pushOn.hidden = on;
      pushOff.hidden = !on;
      pushState.hidden = !message;
      pushState.textContent = message || "";
    }
    function serverKey() {
      const text = pushBox.dataset.vapidKey.replace(/-/g, "+").replace(/_/g, "/");
      const raw = atob(text + "=".repeat((4 - (text.length % 4)) % 4));
      return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
    }
    async function registration() {
      await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      return navigator.serviceWorker.ready;
    }
    async function tellServer(subscription) {
      const response = await fetch("/api/v1/me/push-subscriptions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": window.welfare.csrf },
        body: JSON.stringify(subscription.toJSON()),
      });
      if (!response.ok) throw new Error("push subscription refused: " + response.status);
      localStorage.setItem(PUSH_ID_KEY, (await response.json()).id);
    }
    pushOn.addEventListener("click", async function () {
      pushOn.disabled = true;
      try {
        const permission = await Notification.requestPermission();
        if (permission !== "granted") { showPush(false, words.push_denied); return; }
        const reg = await registration();
        const subscription = (await reg.pushManager.getSubscription()) ||
          (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey() }));
        await tellServer(subscription);
        showPush(true, words.push_on);
      } catch (e) {
        showPush(false, words.push_failed);
      } finally {
        pushOn.disabled = false;
      }
    });
    pushOff.addEventListener("click", async function () {
      pushOff.disabled = true;
      try {
        const reg = await registration();
        const subscription = await reg.pushManager.getSubscription();
        if (subscription) await subscription.unsubscribe();
        const id = localStorage.getItem(PUSH_ID_KEY);
        if (id) {
          await fetch("/api/v1/me/push-subscriptions/" + encodeURIComponent(id), {
            method: "DELETE",
            credentials: "same-origin",
            headers: { Accept: "application/json", "X-CSRF-Token": window.welfare.csrf },
          });
          localStorage.removeItem(PUSH_ID_KEY);
        }
        showPush(false, words.push_off);
      } catch (e) {
        showPush(true, words.push_failed);
      } finally {
        pushOff.disabled = false;
      }
    });
    pushBox.hidden = false;
    // Already on: renew it with the server (keys may have changed, or another user subscribed
    // this shared phone before), without asking anything.
    if (Notification.permission === "granted") {
      registration().then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (subscription) {
        if (!subscription) return;
        return tellServer(subscription).then(function () { showPush(true, words.push_on); });
      }).catch(function () { /* the button stays */ });
    }
  }
})();
