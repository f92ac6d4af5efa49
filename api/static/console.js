// Staff console: the board and the incident page follow the server without a reload by hand.
"use strict";
(function () {
  function fill(template, key, value) {
    return String(template).split("{" + key + "}").join(String(value));
  }

  function cell(text, child) {
    const td = document.createElement("td");
    if (child) td.appendChild(child);
    else td.textContent = text;
    return td;
  }

  function badge(text, cls) {
    const span = document.createElement("span");
    span.className = "badge " + cls;
    span.textContent = text;
    return span;
  }

  // --- the incident board: poll a small JSON list and redraw the rows ---------------------------
  const board = document.getElementById("board");
  if (board) {
    const body = board.querySelector("tbody");
    const updated = document.getElementById("board-updated");
    const every = Math.max(2, Number(board.dataset.pollSeconds) || 5) * 1000;

    const headings = (board.dataset.labels || "").split("|");

    function draw(items) {
      const rows = [];
      items.forEach(function (item) {
        const tr = document.createElement("tr");
        tr.dataset.id = item.id;
        if (item.overdue) tr.className = "overdue";
        const link = document.createElement("a");
        link.href = item.url;
        link.textContent = item.reference;
        tr.appendChild(cell("", link));
        tr.appendChild(cell(item.who));
        tr.appendChild(cell(item.unit));
        const kind = cell(item.kind_label + " · " + item.condition_label);
        if (item.map_url) {
          const map = document.createElement("a");
          map.href = item.map_url;
          map.rel = "noreferrer";
          map.dataset.mapLink = "";
          map.textContent = board.dataset.mapLabel;
          kind.appendChild(document.createTextNode(" "));
          kind.appendChild(map);
        }
        tr.appendChild(kind);
        const status = document.createElement("span");
        status.appendChild(badge(item.status_label, "status-" + item.status));
        if (item.overdue) {
          status.appendChild(document.createTextNode(" "));
          status.appendChild(badge(board.dataset.overdueLabel, "danger"));
        }
        tr.appendChild(cell("", status));
        tr.appendChild(cell(item.opened_at));
        tr.appendChild(cell(fill(board.dataset.minutesLabel, "minutes", item.minutes_open)));
        Array.prototype.forEach.call(tr.children, function (td, index) {
          if (headings[index]) td.dataset.label = headings[index];
        });
        rows.push(tr);
      });
      if (!rows.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        const td = cell(board.dataset.emptyLabel);
        td.colSpan = 7;
        tr.appendChild(td);
        rows.push(tr);
      }
      body.replaceChildren.apply(body, rows);
    }

    async function poll() {
      try {
        const data = await window.welfare.api("GET", board.dataset.url);
        draw(data.items);
        window.welfare.status("");
        if (updated) updated.textContent = fill(updated.dataset.template, "time", new Date().toLocaleTimeString());
      } catch (error) {
        if (error.status === 401 || error.status === 403) { window.location.reload(); return; }
        window.welfare.status(board.dataset.offlineLabel, false);
      }
      window.setTimeout(poll, every);
    }
    window.setTimeout(poll, every);
  }

  // --- the incident page: reload when the server has news and nobody is typing -------------------
  const live = document.getElementById("incident-live");
  if (live) {
    const every = Math.max(2, Number(live.dataset.pollSeconds) || 5) * 1000;
    let pending = false;

    function typing() {
      const fields = document.querySelectorAll("main textarea, main input:not([type=hidden]), main select");
      for (const field of fields) {
        if (document.activeElement === field) return true;
        if ((field.tagName === "SELECT" ? field.selectedIndex > 0 : field.value !== field.defaultValue)) return true;
      }
      return false;
    }

    async function check() {
      try {
        const data = await window.welfare.api("GET", live.dataset.url);
        const changed = data.status !== live.dataset.status
          || String(data.event_count) !== live.dataset.eventCount;
        if (changed || pending) {
          if (typing()) {
            pending = true;
            window.welfare.status(live.dataset.changedLabel, true);
          } else {
            window.location.reload();
            return;
          }
        }
      } catch (error) {
        if (error.status === 401 || error.status === 404) return;
      }
      window.setTimeout(check, every);
    }
    window.setTimeout(check, every);
  }
})();

// The label sheet's print button (no inline handlers under the CSP).
document.addEventListener("click", function (event) {
  const target = event.target;
  if (target instanceof HTMLElement && target.hasAttribute("data-print")) window.print();
});
