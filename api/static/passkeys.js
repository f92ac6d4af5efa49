// Passkeys (WebAuthn): "Add a passkey" on the account page, "Sign in with a passkey" on the
// sign-in page. The server hands out the options as JSON (binary values in base64url) and
// takes the browser's answer the same way; this file only converts between the two and calls
// navigator.credentials. Where the browser has no WebAuthn, the passkey controls stay hidden.
"use strict";
(function () {
  const supported = typeof window.PublicKeyCredential !== "undefined" &&
    Boolean(navigator.credentials);
  document.querySelectorAll("[data-passkey-supported]").forEach(function (el) { el.hidden = !supported; });
  document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) { el.hidden = supported; });
  if (!supported) return;

  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const raw = atob(padded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: toBytes(c.id) }); });
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      allowCredentials: descriptors(json.allowCredentials),
    });
  }

  // What PublicKeyCredential.toJSON() gives, built by hand for browsers without it.
  function credentialJSON(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = toText(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  async function post(url, csrf, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const type = response.headers.get("content-type") || "";
    if (!type.includes("application/json")) {
      // Signed out meanwhile (a redirect to the sign-in page): show the page as it is now.
      window.location.reload();
      const error = new Error("");
      error.fromServer = true;  // nothing to explain: the page is on its way
      throw error;
    }
    const data = await response.json();
    if (!response.ok) {
      const error = new Error(typeof data.detail === "string" ? data.detail : "");
      error.fromServer = true;
      throw error;
    }
    return data;
  }

  function explain(box, holder, error) {
    let message = error && error.fromServer ? error.message : holder.dataset.msgFailed;
    if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
      message = holder.dataset.msgCancelled;
    }
    if (!message) return;
    box.textContent = message;
    box.hidden = false;
  }

  const addForm = document.getElementById("passkey-add");
  if (addForm) {
    const meta = document.querySelector('meta[name="csrf-token"]');
    const csrf = meta ? meta.content : "";
    const box = document.getElementById("passkey-error");
    addForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = addForm.querySelector("button[type=submit]");
      button.disabled = true;
      box.hidden = true;
      try {
        const password = addForm.elements.password ? addForm.elements.password.value : null;
        const options = await post("/account/passkeys/options", csrf, { password: password });
        const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
        await post("/account/passkeys", csrf, {
          name: addForm.elements.name.value,
          credential: credentialJSON(credential),
        });
        window.location.assign("/account?saved=passkey#passkeys");
      } catch (error) {
        explain(box, addForm, error);
        button.disabled = false;
      }
    });
  }

  const signIn = document.getElementById("passkey-sign-in");
  if (signIn) {
    const field = document.querySelector('form[action="/login"] input[name="csrf_token"]');
    const csrf = field ? field.value : "";
    const box = document.getElementById("passkey-error");
    signIn.addEventListener("click", async function () {
      signIn.disabled = true;
      box.hidden = true;
      try {
        const options = await post("/login/passkey/options", csrf, {});
        const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
        const done = await post("/login/passkey", csrf, {
          credential: credentialJSON(credential),
          next: signIn.dataset.next || null,
          lang: signIn.dataset.lang || null,
        });
        window.location.assign(done.redirect);
      } catch (error) {
        explain(box, signIn, error);
        signIn.disabled = false;
      }
    });
  }
})();
