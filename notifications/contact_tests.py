"""What a contact test says (welfare/contact_checks.py): the test SMS with its
`/v/<token>` link, and the test call's script ("This is a test from <site>. Press 1 to confirm
this number."), in the contact's language, as the dispatcher's neutral `Text` or
`CallScript` (the keypress webhook renders the call again for a repeat).
"""

from __future__ import annotations

import uuid

from sqlmodel import Session

from notifications import messages
from notifications.channels import CallScript, Text
from welfare import contact_checks
from welfare.channels import ChannelKind
from welfare.outbox.models import OutboxMessage
from welfare.settings import Settings
from welfare.sites.models import Site

TEMPLATE = contact_checks.TEMPLATE
PURPOSE: messages.CallPurpose = "contact_test"


def link_url(settings: Settings, token: str) -> str:
    """The test link (api/pages/contact_test.py): no sign-in, the token is the key."""
    return f"{settings.public_base_url.rstrip('/')}/v/{token}"


def unverified_url(settings: Settings) -> str:
    """The signed-in console page naming the unverified contacts of the reader's site (a
    reader of several sites picks one there: a site id would not fit the reminder's two
    segments in Chinese or Korean)."""
    return f"{settings.public_base_url.rstrip('/')}/console/contacts/unverified"


def render(
    session: Session, message: OutboxMessage, settings: Settings, site: Site
) -> Text | CallScript | None:
    """The test SMS with its link, or the test call's script; None when there is nothing to
    send any more (the link is gone: the contact was removed or their number changed)."""
    if message.kind is ChannelKind.voice:
        text = messages.contact_test_call_text(message.language, site_name=site.name)
        return CallScript(text, PURPOSE)
    try:
        link_id = uuid.UUID(str(message.params.get("link_id")))
    except ValueError:
        return None
    token = contact_checks.token_for(session, link_id, settings.secret_key)
    if token is None:
        return None
    return Text.rendered(
        messages.contact_test_sms,
        message.language,
        site_name=site.name,
        link=link_url(settings, token),
    )
