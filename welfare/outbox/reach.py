"""`can_receive`: the one rule for whether a family contact may be sent something on a channel.

Every path that writes to a contact keeps it: the escalation's steps, staff's "send now", the
coming notices, the all-clear and a contact's test message. The words it answers with go on the
timeline (and into 409 answers), so they name the rule, never the person.
"""

from __future__ import annotations

import datetime as dt

from welfare.channels import ChannelKind
from welfare.residents.models import Contact
from welfare.times import zone

NO_CONSENT = "no consent to be contacted"
NOT_THEIR_CHANNEL = {
    ChannelKind.sms: "takes no SMS",
    ChannelKind.voice: "takes no calls",
    ChannelKind.push: "push is for staff phones",
}
OPTED_OUT = "SMS opted out"
LANDLINE = "landline: call only"
QUIET_HOURS = "quiet hours"


def refusal(
    contact: Contact,
    channel: ChannelKind,
    *,
    at: dt.datetime | None = None,
    timezone: str | None = None,
) -> str | None:
    """Why `contact` may not be sent `channel` now, or None when they may.

    Quiet hours are checked only when the caller gives the moment and the site's timezone: an
    urgent escalation step, a confirmation's coming notice and a staff member's deliberate
    "send now" are not held back by them."""
    if not contact.consent_to_contact:
        return NO_CONSENT
    if channel.value not in contact.channels:
        return NOT_THEIR_CHANNEL[channel]
    if channel is ChannelKind.sms:
        if contact.sms_opted_out:
            return OPTED_OUT
        if contact.phone_line_type == "landline":
            return LANDLINE
    if at is not None and timezone is not None and in_quiet_hours(contact, at, timezone):
        return QUIET_HOURS
    return None


def can_receive(
    contact: Contact,
    channel: ChannelKind,
    *,
    at: dt.datetime | None = None,
    timezone: str | None = None,
) -> bool:
    return refusal(contact, channel, at=at, timezone=timezone) is None


def in_quiet_hours(contact: Contact, at: dt.datetime, timezone: str) -> bool:
    start, end = contact.quiet_hours_start, contact.quiet_hours_end
    if start is None or end is None:
        return False
    local = at.astimezone(zone(timezone)).time()
    return start <= local < end if start < end else (local >= start or local < end)
