"""The channel vocabulary: one word per way of reaching someone, the same in contacts' channels,
escalation policies' steps, outbox rows, timeline events and the JSON API.

`notifications/` registers one sender per kind; a contact lists the kinds they take.
"""

from __future__ import annotations

from enum import StrEnum


class ChannelKind(StrEnum):
    sms = "sms"
    voice = "voice"  # a phone call: a script spoken, keys to press
    whatsapp = "whatsapp"  # a written message, like an SMS, through WhatsApp
    # A notification on a staff member's phone through the browser's push service
    # (docs/web-push.md): never to family contacts.
    push = "push"


# The kinds a family contact may choose to be reached by (their `channels`, an escalation
# step's, a staff member's "send now"): push goes to staff phones only.
CONTACT_CHANNELS = (ChannelKind.sms, ChannelKind.voice, ChannelKind.whatsapp)
# The written ones: a policy step's "sms" covers every written channel a contact takes.
WRITTEN = frozenset({ChannelKind.sms, ChannelKind.whatsapp})
