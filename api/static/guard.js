// The guard app: offline queue of found reports, GPS, tag scanning, live incident status.
// Strings come translated from the page (JSON blocks); nothing personal is kept on the phone:
// a queued report holds ids, the condition, the typed location and note only.
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
          const url = "/guard/incidents/" + incident.id;
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
      showWaiting();
    } finally {
      flushing = false;
    }
  }
  window.addEventListener("online", flush);
  setInterval(function () { if (loadQueue().length) flush(); }, 15000);

  // --- the found form --------------------------------------------------------------------------
  const foundForm = document.querySelector("[data-found-form]");
  if (foundForm) {
    const idField = foundForm.elements.client_request_id;
    if (!idField.value && window.crypto && crypto.randomUUID) idField.value = crypto.randomUUID();

    foundForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const f = foundForm.elements;
      const checked = foundForm.querySelector('input[name="condition"]:checked');
      const number = function (v) { return v === "" ? null : Number(v); };
      const body = {
        kind: "found",
        resident_id: foundForm.dataset.residentId,
        condition: checked ? checked.value : "well",
        location: f.location.value.trim() || null,
        latitude: number(f.latitude.value),
        longitude: number(f.longitude.value),
        note: f.note.value.trim() || null,
        client_request_id: idField.value,
      };
      // Kept on the phone first: a report is never lost to a dropped connection.
      enqueue(body);
      foundForm.querySelector('button[type="submit"]').disabled = true;
      banner(words.sending, false);
      if (navigator.onLine === false) {
        showWaiting();
        return;
      }
      flush().then(function () {
        if (loadQueue().some(function (item) { return item.id === idField.value; })) showWaiting();
      });
    });

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
    function stateOf(messages, confirmed) {
      if (confirmed) return [[w.confirmed, "ok"]];
      const parts = [];
      const lastOf = function (channel) {
        const list = messages.filter(function (m) { return m.channel === channel && m.status !== "cancelled"; });
        return list.length ? list[list.length - 1] : null;
      };
      const sms = lastOf("sms");
      const call = lastOf("call");
      if (call) { const s = callState(call); if (s) parts.push(s); }
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
      const managerNotes = notes.filter(function (n) { return n.user_id && !n.contact_id; });
      const manager = document.querySelector("[data-duty-manager]");
      if (manager && managerNotes.length) {
        manager.hidden = false;
        paint(manager, stateOf(managerNotes, incident.confirmed_via === "manager"));
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

  if (loadQueue().length) {
    showWaiting();
    if (navigator.onLine !== false) flush();
  }
})();
