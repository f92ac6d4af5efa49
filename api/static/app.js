// Shared page helpers: JSON calls to the API with the session's CSRF token, confirmations.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  async function api(method, url, body) {
    const options = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") options.headers["X-CSRF-Token"] = csrf;
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) data = await response.json();
    if (!response.ok) {
      const detail = data && data.detail;
      const message = typeof detail === "string" ? detail
        : Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : response.statusText;
      const error = new Error(message || String(response.status));
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }

  function status(message, ok) {
    const line = document.getElementById("status-line");
    if (!line) return;
    line.textContent = message || "";
    line.hidden = !message;
    line.classList.toggle("ok", Boolean(ok));
  }

  // <form data-confirm="..."> asks before submitting (no inline script under the CSP).
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  window.welfare = { api: api, status: status, csrf: csrf };
})();
