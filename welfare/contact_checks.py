"""Test a family contact before it matters: a test SMS with a link, or a test call (press 1).

A flow beside the folders: it reads the registry (welfare/residents/), queues through the outbox
and shares the answer links' token scheme (welfare/incidents/answer_links.py).

Staff send either from the console or the API (`send_contact_test`). A tapped link
(`verify_by_link`) or key 1 on the test call (`verify_by_key`) proves the number reaches the
contact: `contact.verified_at` and `verified_via` are set, with an audit entry. A contact never
verified, or not for 12 months, is listed by `residents/unverified.py`; the consent review
reminder counts them. A new phone number is unverified again
(`residents.service.update_contact` clears it and drops the old number's links).

The link: `/v/<token>`, a table of its own (`ContactTestLink`), not a generalised answer link.
An answer link belongs to an incident and dies when it closes; a test link belongs to one test
of one contact, lives `LINK_DAYS` (7) days and does one thing (confirm the number), so sharing
the answer link's table would mean a nullable incident and a second set of rules on every read.
What is shared is the token scheme (`answer_links.derive_token`, under a purpose of its own):
96 bits of HMAC of `WELFARE_SECRET_KEY` and the link's random id, derived when the SMS is
rendered and stored only as its SHA-256, so a database dump gives nobody a working link and a
resend after a crash carries the same link. One link per test request (`request_key`, the
outbox row's idempotency key): a double click queues one SMS with one link.

Opening the link verifies: that is the whole point of the tap, and there is nothing else to
answer. (A messaging app that fetches the link for a preview on the contact's phone also proves
the SMS arrived there, which is what the test is for.) Tapping twice is fine: the page says the
same thing and nothing is recorded twice.

There is no incident, so nothing goes on a timeline; everything is in the audit log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col, select

from welfare import outbox
from welfare.audit.service import audit_resident
from welfare.audit.service import record as audit_record
from welfare.authz import Actor, Permission
from welfare.channels import ChannelKind
from welfare.db import insert_unless_conflict, utcnow
from welfare.errors import Conflict, NotFound
from welfare.incidents.answer_links import TOKEN_SHAPE, derive_token
from welfare.outbox import reach
from welfare.outbox.models import OutboxMessage
from welfare.outbox.queue import already_queued
from welfare.residents.models import Contact, ContactTestLink, Resident, VerifiedVia
from welfare.residents.service import load_resident
from welfare.sites.models import Site
from welfare.users.service import hash_token

TEMPLATE = "contact_test"
LINK_DAYS = 7
_PURPOSE = b"welfare-contact-test-v1:"
# Audit actions ("contact.test", "contact.verified", "contact.unverified_list") each have words
# on the console (api/pages/console/audit.py ACTION_LABELS).


def request_key(contact_id: uuid.UUID, channel: ChannelKind, request_id: str) -> str:
    return f"contact-test:{contact_id}:{channel.value}:{request_id}"


def send_contact_test(
    session: Session,
    actor: Actor,
    contact_id: uuid.UUID,
    channel: ChannelKind,
    request_id: str | None = None,
    *,
    resident_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> OutboxMessage:
    """Queue a test SMS (with its link) or a test call to one contact, at once.

    Staff and up of the contact's site (as for "send now"). `request_id` makes a repeated
    submission queue nothing twice: the same id returns the row already queued. Refused with
    the contact rule's words (`reach.refuse_if_barred`): no consent, a channel they do not take,
    an SMS opt-out or a landline for SMS. `resident_id`, when given (the API's path), must be the
    contact's resident.
    """
    now = now or utcnow()
    contact = session.get(Contact, contact_id)
    if contact is None or (resident_id is not None and contact.resident_id != resident_id):
        raise NotFound("contact")
    resident = load_resident(session, actor, contact.resident_id, Permission.registry_write)
    key = request_key(contact.id, channel, request_id or uuid.uuid4().hex)
    earlier = already_queued(session, key)
    if earlier is not None:
        return earlier
    reach.refuse_if_barred(contact, channel)
    params: dict[str, object] = {"site_id": resident.site_id, "contact_id": contact.id}
    if channel is ChannelKind.sms:
        params["link_id"] = _link_for(session, contact, key, now).id
    message = outbox.enqueue(
        session,
        kind=channel,
        to=contact.phone,
        language=contact.language,
        template=TEMPLATE,
        key=key,
        params=params,
        contact_id=contact.id,
        actor=actor,
        once=True,
        now=now,
    )
    if message is None:  # the same request, racing: it queued the row first
        earlier = already_queued(session, key)
        if earlier is None:
            raise Conflict("this test is being sent already: look again in a moment")
        return earlier
    audit_resident(
        session,
        actor,
        "contact.test",
        resident,
        entity="contact",
        entity_id=contact.id,
        detail={"channel": channel.value, "message_id": str(message.id)},
    )
    return message


def _link_for(session: Session, contact: Contact, key: str, now: dt.datetime) -> ContactTestLink:
    """The test's link, one per request key (a racing double click finds the first one)."""
    link = ContactTestLink(
        contact_id=contact.id,
        request_key=key,
        token_hash="",
        created_at=now,
        expires_at=now + dt.timedelta(days=LINK_DAYS),
    )
    # A placeholder until the token is known: unique, and never the hash of any token.
    link.token_hash = f"pending:{link.id.hex}"
    if not insert_unless_conflict(session, link):
        found = session.exec(
            select(ContactTestLink).where(ContactTestLink.request_key == key)
        ).first()
        if found is None:
            raise Conflict("this test is being sent already: look again in a moment")
        return found
    return link


def token_for(session: Session, link_id: uuid.UUID, secret_key: str) -> str | None:
    """The link's raw token, for the dispatcher rendering the test SMS; None when the link is
    gone (the contact was removed, or their number changed since)."""
    link = session.get(ContactTestLink, link_id)
    if link is None:
        return None
    token = derive_token(secret_key, link.id, _PURPOSE)
    if link.token_hash != hash_token(token):  # first render, or the secret key was rotated
        link.token_hash = hash_token(token)
        session.add(link)
    return token


# --- verifying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThanksPage:
    """What the public page may show: the site's name, in the contact's language. Nothing
    else, not even the contact's name."""

    site_name: str
    language: str


def _site_name(session: Session, contact: Contact) -> str:
    resident = session.get(Resident, contact.resident_id)
    site = session.get(Site, resident.site_id) if resident else None
    return site.name if site else ""


def _live(session: Session, token: str, now: dt.datetime) -> tuple[ContactTestLink, Contact] | None:
    """The link behind a token and its contact, until it expires; None for anything else."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    link = session.exec(
        select(ContactTestLink).where(ContactTestLink.token_hash == hash_token(token))
    ).first()
    if link is None or link.expires_at <= now:
        return None
    contact = session.get(Contact, link.contact_id)
    return None if contact is None else (link, contact)


def verify_by_link(
    session: Session, token: str, now: dt.datetime | None = None
) -> ThanksPage | None:
    """The contact opened their test link: the number is verified. None for an unknown,
    malformed or expired token, all alike. The first opening verifies and is audited; later
    ones only show the page again (two taps at once record one: the link's first use is one
    conditional UPDATE)."""
    now = now or utcnow()
    found = _live(session, token, now)
    if found is None:
        return None
    link, contact = found
    first = session.execute(
        update(ContactTestLink)
        .where(col(ContactTestLink.id) == link.id, col(ContactTestLink.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if first.rowcount == 1:  # type: ignore[attr-defined]
        _verified(session, contact, VerifiedVia.sms_link, now)
    return ThanksPage(site_name=_site_name(session, contact), language=contact.language)


def verify_by_key(session: Session, message: OutboxMessage, now: dt.datetime | None = None) -> bool:
    """Key 1 on a test call: the number is verified, if it is still the number that was
    called. The webhook makes sure one key press is taken once."""
    if message.template != TEMPLATE or message.contact_id is None:
        return False
    contact = session.get(Contact, message.contact_id)
    if contact is None or contact.phone != message.to_phone:
        return False
    _verified(session, contact, VerifiedVia.keypress, now or utcnow())
    return True


def _verified(session: Session, contact: Contact, via: VerifiedVia, now: dt.datetime) -> None:
    contact.verified_at, contact.verified_via = now, via
    session.add(contact)
    resident = session.get(Resident, contact.resident_id)
    audit_record(
        session,
        actor=Actor.system(),
        action="contact.verified",
        entity="contact",
        entity_id=contact.id,
        resident_id=contact.resident_id,
        site_id=resident.site_id if resident else None,
        detail={"via": via.value},
    )
