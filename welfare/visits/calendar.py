"""A staff member's own visits as an iCalendar feed (`/calendar/{token}.ics`)."""

from __future__ import annotations

import datetime as dt

from welfare.users.models import User
from welfare.visits.calendar_view import PlannedVisit
from welfare.visits.models import Visit, VisitKind, VisitOutcome, VisitStatus

KIND_WORDS = {
    VisitKind.home_visit: "Home visit",
    VisitKind.phone_checkin: "Phone check-in",
    VisitKind.automated_call: "Automated check-in call",
}


def ical_feed(
    user: User, entries: list[Visit | PlannedVisit], base_url: str, now: dt.datetime
) -> bytes:
    """The assignee's visits, and the occurrences their schedules will bring, as an iCalendar
    feed. Events name the kind and link to the visit or schedule (behind sign-in); no resident
    name, unit or note leaves in the feed. An event's UID is its schedule and start, so a planned
    occurrence keeps its UID when it becomes a visit."""
    from icalendar import Calendar, Event

    base = base_url.rstrip("/")
    calendar = Calendar()
    calendar.add("prodid", "-//welfare//visits//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Welfare visits")
    for entry in entries:
        event = Event()
        event.add("uid", f"{entry.schedule_id}-{entry.window_start:%Y%m%dT%H%M%SZ}@welfare")
        event.add("dtstamp", now)
        event.add("dtstart", entry.window_start)
        event.add("dtend", entry.window_end)
        event.add("summary", KIND_WORDS[entry.kind])
        if isinstance(entry, PlannedVisit):
            link = f"{base}/api/v1/visit-schedules/{entry.schedule_id}"
            event.add("status", "TENTATIVE")
            event.add("description", f"Planned by its schedule. Details: {link}")
        else:
            link = f"{base}/api/v1/visits/{entry.id}"
            state = entry.status.value + (
                f" ({entry.outcome.value})" if isinstance(entry.outcome, VisitOutcome) else ""
            )
            cancelled = entry.status == VisitStatus.missed
            event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
            event.add("description", f"Status: {state}. Details: {link}")
        event.add("url", link)
        calendar.add_component(event)
    return bytes(calendar.to_ical())
