"""The channel vocabulary: one word per way of reaching someone, the same in contacts' channels,
escalation policies' steps, outbox rows, timeline events and the JSON API.

`notifications/` registers one sender per kind; a contact lists the kinds they take.
"""

from __future__ import annotations

from enum import StrEnum


class ChannelKind(StrEnum):
    sms = "sms"
    voice = "voice"  # a phone call: a script spoken, keys to press
    # A notification on a staff member's phone through the browser's push service
    # (docs/web-push.md): never to family contacts, who are reached by SMS and calls.
    push = "push"


# What a family contact can be reached by (their `channels`, an escalation step's, a staff
# member's "send now"): push goes to staff phones only.
CONTACT_KINDS = (ChannelKind.sms, ChannelKind.voice)


def only_contact_kinds(kinds: list[ChannelKind]) -> list[ChannelKind]:
    """A contact's channel list without repeats; push refused in words."""
    if any(kind not in CONTACT_KINDS for kind in kinds):
        raise ValueError("a contact takes sms and/or voice; push is for staff phones only")
    return list(dict.fromkeys(kinds))
