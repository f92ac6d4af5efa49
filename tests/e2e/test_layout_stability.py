"""Pages that fill in after load must not move what the guard is about to tap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.e2e.test_guard_flow import Wang, wang  # noqa: F401  (wang is a fixture)
from welfare.sites.models import Site
from welfare.users.models import User

# Every layout shift the page makes, from its first paint on (buffered), with what moved.
RECORD_SHIFTS = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__shifts.push({
      value: entry.value,
      recent: entry.hadRecentInput,
      sources: (entry.sources || []).map((s) => (s.node && s.node.nodeType === 1)
        ? s.node.tagName + "#" + s.node.id + "." + s.node.className + " " +
          JSON.stringify([s.previousRect.y, s.currentRect.y])
        : String(s.node && s.node.nodeName)),
    });
  }
}).observe({ type: "layout-shift", buffered: true });
// Where the hand-over card stood before the first status arrived (the page's script has run,
// its first request has not come back).
document.addEventListener("DOMContentLoaded", () => {
  const card = [...document.querySelectorAll("section.card")].find((s) =>
    s.textContent.includes("Hand over"));
  window.__handoverTop = card ? card.getBoundingClientRect().top + window.scrollY : null;
});
"""


def test_the_live_incident_page_does_not_move_the_hand_over_card_as_its_status_fills_in(
    phone: Any,
    make_user: Callable[..., User],
    site: Site,
    sign_in: Callable[..., None],
    wang: Wang,  # noqa: F811
) -> None:
    guard = make_user("guard", [site])
    sign_in(phone, guard)
    phone.goto(f"/guard/residents/{wang.resident.id}/found")
    phone.get_by_label("Where are you?").fill("Lobby")
    phone.get_by_role("button", name="Send: call the family now").click()
    phone.wait_for_url("**/guard/incidents/*")
    # Opened again (as after a reload) with the shift recorder in place from the first paint.
    phone.add_init_script(RECORD_SHIFTS)
    phone.goto(phone.url)
    son_row = phone.locator(f'[data-contact-id="{wang.son.id}"]')
    son_row.get_by_text("Calling").or_(son_row.get_by_text("No answer")).first.wait_for()
    phone.locator("#live-updated").get_by_text("Updated").wait_for()
    handover = phone.locator("section.card", has_text="Hand over")
    assert phone.evaluate("window.__handoverTop") == handover.bounding_box()["y"]
    shifts = phone.evaluate("window.__shifts")
    # Before the fix the card, the office button and the photo form moved 35 px: 0.084. What is
    # left is the contact states' words changing width on their line (about 0.008).
    assert sum(s["value"] for s in shifts) < 0.05, shifts
