"""`can_receive`: the one rule for whether a family contact may be sent something on a channel.

Every path that writes to a contact keeps it: the escalation's steps, staff's "send now", the
coming notices, the all-clear and a contact's test message. The words it answers with go on the
timeline (and into 409 answers), so they name the rule, never the person.
"""

from __future__ import annotations

import datetime as dt

from welfare.channels import WRITTEN, ChannelKind
from welfare.errors import Conflict, InvalidInput
from welfare.residents.models import Contact
from welfare.times import zone

NO_CONSENT = "no consent to be contacted"
NOT_THEIR_CHANNEL = {
    ChannelKind.sms: "takes no SMS",
    ChannelKind.voice: "takes no calls",
    ChannelKind.whatsapp: "takes no WhatsApp",
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
    if channel is ChannelKind.sms and contact.sms_opted_out:
        return OPTED_OUT
    if channel in WRITTEN and contact.phone_line_type == "landline":
        return LANDLINE
    if at is not None and timezone is not None and in_quiet_hours(contact, at, timezone):
        return QUIET_HOURS
    return None


# Staff asked for something the contact's rule refuses (a "send now", a contact test): the words
# say which rule. A channel the contact does not take, or a landline for SMS, is a wrong choice
# in the request (422); no consent or an opt-out is the contact's own standing answer (409).
REFUSALS: dict[str, tuple[str | None, str]] = {
    NO_CONSENT: (None, "this contact has not agreed to be contacted"),
    NOT_THEIR_CHANNEL[ChannelKind.sms]: ("channel", "this contact takes no SMS"),
    NOT_THEIR_CHANNEL[ChannelKind.voice]: ("channel", "this contact takes no calls"),
    NOT_THEIR_CHANNEL[ChannelKind.whatsapp]: ("channel", "this contact takes no WhatsApp"),
    NOT_THEIR_CHANNEL[ChannelKind.push]: ("channel", "a contact gets an SMS, a call or WhatsApp"),
    OPTED_OUT: (None, "this contact opted out of SMS"),
    LANDLINE: ("channel", "a landline gets a call, not an SMS or WhatsApp"),
}


def refuse_if_barred(contact: Contact, channel: ChannelKind) -> None:
    """For a staff member's deliberate send: raise the 422 or 409 that says which rule bars
    `contact` from `channel` (quiet hours do not hold such a send back)."""
    why = refusal(contact, channel)
    if why is not None:
        field, words = REFUSALS[why]
        raise InvalidInput(field, words) if field else Conflict(words)


def can_receive(
    contact: Contact,
    channel: ChannelKind,
    *,
    at: dt.datetime | None = None,
    timezone: str | None = None,
) -> bool:
    return refusal(contact, channel, at=at, timezone=timezone) is None


def written_channel(contact: Contact) -> ChannelKind | None:
    """The channel a short follow-up text goes by (a coming notice, the all-clear): SMS when
    the contact may be texted, else WhatsApp when they take it; None when neither."""
    for kind in (ChannelKind.sms, ChannelKind.whatsapp):
        if can_receive(contact, kind):
            return kind
    return None


def in_quiet_hours(contact: Contact, at: dt.datetime, timezone: str) -> bool:
    start, end = contact.quiet_hours_start, contact.quiet_hours_end
    if start is None or end is None:
        return False
    local = at.astimezone(zone(timezone)).time()
    return start <= local < end if start < end else (local >= start or local < end)
