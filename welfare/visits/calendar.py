"""A staff member's own visits as an iCalendar feed (`/calendar/{token}.ics`)."""

from __future__ import annotations

import datetime as dt

from welfare.users.models import User
from welfare.visits.models import Visit, VisitKind, VisitOutcome, VisitStatus

KIND_WORDS = {
    VisitKind.home_visit: "Home visit",
    VisitKind.phone_checkin: "Phone check-in",
    VisitKind.automated_call: "Automated check-in call",
}


def ical_feed(user: User, visits: list[Visit], base_url: str, now: dt.datetime) -> bytes:
    """The assignee's visits as an iCalendar feed. Events name the kind and link to the visit
    (behind sign-in); no resident name, unit or note leaves in the feed."""
    from icalendar import Calendar, Event

    calendar = Calendar()
    calendar.add("prodid", "-//welfare//visits//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Welfare visits")
    for visit in visits:
        event = Event()
        event.add("uid", f"{visit.id}@welfare")
        event.add("dtstamp", now)
        event.add("dtstart", visit.window_start)
        event.add("dtend", visit.window_end)
        event.add("summary", KIND_WORDS[visit.kind])
        event.add("status", "CANCELLED" if visit.status == VisitStatus.missed else "CONFIRMED")
        link = f"{base_url.rstrip('/')}/api/v1/visits/{visit.id}"
        state = visit.status.value + (
            f" ({visit.outcome.value})" if isinstance(visit.outcome, VisitOutcome) else ""
        )
        event.add("description", f"Status: {state}. Details: {link}")
        event.add("url", link)
        calendar.add_component(event)
    return bytes(calendar.to_ical())
