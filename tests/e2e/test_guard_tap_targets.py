"""The guard's pages on a 360 x 740 phone: every link, button and field is at least 44 x 44 px
(WCAG 2.5.5's target size, Apple's and Google's minimum), and a very long unbroken name or
description wraps instead of pushing anything past the screen's right edge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session

from tests.conftest import SYSTEM
from tests.e2e.conftest import Screenshot
from welfare.incidents import service as incidents
from welfare.incidents.models import IncidentCreate, IncidentKind
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.users.models import User

LONG = "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschaferswessenschafe"
MIN = 44

# Every visible tap target with its box, and every element whose right edge passes the viewport.
# A checkbox or radio button is tapped through the label that holds it: the label's box counts.
# The skip link waits off-screen (left of it) until it is focused.
MEASURE = """
() => {
  const width = document.documentElement.clientWidth;
  const classes = (el) => typeof el.className === "string" && el.className
    ? "." + el.className.split(" ").join(".") : "";
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + classes(el) +
    " " + JSON.stringify((el.textContent || el.value || el.name || "").trim().slice(0, 40));
  const small = [];
  for (const el of document.querySelectorAll("a[href], button, input, select, textarea, summary")) {
    if (el.type === "hidden" || el.closest("[hidden]")) continue;
    const own = el.getBoundingClientRect();
    if (own.width === 0 && own.height === 0) continue;  // not rendered (a closed <details>)
    if (own.right <= 0) continue;
    const target = (el.type === "checkbox" || el.type === "radio") && el.closest("label")
      ? el.closest("label") : el;
    const box = target.getBoundingClientRect();
    if (box.width < %(min)d || box.height < %(min)d) {
      small.push(name(el) + " " + Math.round(box.width) + "x" + Math.round(box.height));
    }
  }
  const overflowing = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("[hidden]")) continue;
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) {
      overflowing.push(name(el) + " " + Math.round(box.right));
    }
  }
  return {small, overflowing, scroll: document.documentElement.scrollWidth - width};
}
""".replace("%(min)d", str(MIN))


def test_guard_pages_have_big_targets_and_wrap_long_words_at_360_px(
    phone: Any,
    db: Session,
    site: Site,
    make_user: Callable[..., User],
    make_household: Callable[..., Any],
    make_resident: Callable[..., Resident],
    make_consent: Callable[..., Any],
    make_contact: Callable[..., Any],
    sign_in: Callable[..., None],
    screenshot: Screenshot,
) -> None:
    resident = make_resident(
        make_household("1", "1609"),
        full_name=LONG,
        preferred_name=LONG,
        clothing=f"grey coat {LONG}",
        distinguishing_marks=LONG,
        walking_aid=LONG,
        approach=LONG,
    )
    make_consent(resident)
    make_contact(resident)
    missing = make_resident(make_household("1", "1610"), full_name="Li Fang", clothing=LONG)
    make_consent(missing)
    opened = incidents.open_incident(
        session=db,
        actor=SYSTEM,
        data=IncidentCreate(
            kind=IncidentKind.missing, resident_id=missing.id, client_request_id="missing-1"
        ),
    )
    db.commit()
    alert_id = opened.incident.id
    guard = make_user("guard", [site], display_name=f"Guard {LONG}")
    sign_in(phone, guard)
    phone.goto(f"/guard/residents/{resident.id}/found")
    phone.get_by_label("Where are you?").fill("Lobby")
    phone.get_by_role("button", name="Send: call the family now").click()
    phone.wait_for_url("**/guard/incidents/*")
    incident_page = phone.url

    pages = [
        "/guard",
        f"/guard/search?q={LONG[:30]}",
        "/guard/search?q=grey+coat",
        f"/guard/residents/{resident.id}?q=grey",
        f"/guard/residents/{resident.id}/found",
        "/guard/unknown",
        "/guard/scan",
        "/guard/alerts",
        f"/guard/alerts/{alert_id}",
        incident_page,
    ]
    problems = {}
    for path in pages:
        response = phone.goto(path)
        assert response is not None and response.status == 200, path
        phone.wait_for_load_state("load")
        found = phone.evaluate(MEASURE)
        if found["small"] or found["overflowing"] or found["scroll"] > 0:
            problems[path] = found
    assert problems == {}
    # The long name is on the card, whole: wrapped, not cut.
    phone.goto(f"/guard/residents/{resident.id}")
    heading = phone.locator("h1.person-name")
    assert heading.inner_text().replace("\n", "") == LONG
    assert heading.bounding_box()["height"] > 40  # on more than one line
    phone.goto("/guard/search?q=grey+coat")
    screenshot(phone, "guard-search-long-name")
