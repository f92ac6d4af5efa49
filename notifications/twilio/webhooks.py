"""What Twilio's callbacks mean: signature check, status news, the keypress, inbound SMS.

The routes (api/routes/webhooks.py) only read the form and hand it here, inside the request's
transaction. Rules:

- Every callback is signed by Twilio over the exact URL it called. That URL is rebuilt from
  `WELFARE_PUBLIC_BASE_URL` + the route path + the raw query string (behind a proxy the
  request's own URL differs). Without an auth token nothing legitimate can call us, so every
  callback is refused then too.
- Idempotent: each callback's effects are written together with a `WebhookReceipt` keyed by
  provider ids (`status:<sid>:<status>`, `gather:<CallSid>:<attempt>:<digits>`,
  `inbound:<MessageSid>`); a repeat finds the receipt and changes nothing.
- The outbox row is found by the `message_id` we put in every callback URL, then by the SID,
  so news that overtakes the dispatcher's "sent" (SID not stored yet) still lands; the SID is
  stored when missing. A row that was resent after a crash keeps its newest SID: news about the
  older call is recorded on the timeline but does not change the row's provider status.
- Status news never moves a row's provider status backwards ("sent" after "delivered").
- Only a keypress 1 (Gather) and a confirming SMS reply confirm. An answered call without a key,
  a voicemail, no answer, busy, failed, cancelled never do.
- A contact's call that ends without a key (no answer, busy, failed, cancelled, completed with
  no key pressed, or an answering machine) is a missed call (`incidents.record_missed_call`):
  "voicemail", "no answer", "busy", "hung up without a key" on the timeline, and with the
  policy's `advance_on_miss` (the default) the next contact's step starts at once. A key of any
  kind means a person heard the call: the escalation then keeps its timer.
- Answering-machine detection (`/answered-by`, Twilio's asynchronous AMD callback): on
  `machine_end_beep`, `machine_end_silence`, `machine_end_other` or `fax` the live call's TwiML
  is replaced, after the commit, with a short voicemail in the contact's language (reference
  and office phone only) and a hang-up; `human` and `unknown` change nothing. A repeat of the
  callback finds its receipt and updates nothing twice.
- Timeline details hold ids, channels, statuses, digits and codes: never a name, a phone number
  or the text of a reply. Unknown SIDs and unknown numbers get a 200 and leave no trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.voice_response import VoiceResponse

from notifications import contact_tests, messages, metrics
from notifications.channels import CallScript, ChannelError
from notifications.dispatcher import RenderError, render
from notifications.messages import CallPurpose
from notifications.status import (
    MACHINE_ANSWERS,
    find_row,
    first_receipt,
    incident_of,
    message_id_of,
    record_status,
)
from notifications.twilio import twiml
from notifications.twilio.client import PERMANENT_ERRORS
from notifications.twilio.urls import webhook_url
from welfare import contact_checks
from welfare.audit import service as audit
from welfare.authz import Actor, Role
from welfare.channels import ChannelKind
from welfare.db import on_commit
from welfare.errors import PermissionDenied
from welfare.incidents import service as incidents
from welfare.incidents import timeline
from welfare.incidents.models import Incident, IncidentStatus
from welfare.outbox.models import OutboxMessage
from welfare.phones import display_phone
from welfare.residents.models import Contact, Resident
from welfare.settings import Settings
from welfare.sites.models import Site
from welfare.visits import service as visits

log = logging.getLogger("welfare.webhooks")


class CallControl(Protocol):
    """Changing a call while it is live: after an answering machine picked up, the call plays
    a short voicemail instead of the keypress script."""

    def update_call(self, *, provider_id: str, twiml: str) -> None: ...


EMPTY_TWIML = str(VoiceResponse().to_xml())


def _hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())


HANG_UP_TWIML = _hang_up()

# Delivery error codes of status callbacks (the API's own codes are in PERMANENT_ERRORS).
DELIVERY_ERRORS = {
    30003: "the handset is unreachable (switched off or out of coverage)",
    30004: "the message was blocked by the recipient or the carrier",
    30005: "the number is unknown or no longer in service",
    30006: "the number is a landline or cannot receive SMS",
    30007: "the carrier filtered the message",
    30008: "the message could not be delivered (unknown carrier error)",
    21610: PERMANENT_ERRORS[21610],
}
VALID_DIGITS = frozenset("0123456789*#")


# --- signature ----------------------------------------------------------------------------------


def public_url(settings: Settings, route_path: str, raw_query: str) -> str:
    """The URL Twilio called (and signed): public base + route path + the query as sent."""
    url = f"{settings.public_base_url.rstrip('/')}{route_path}"
    return f"{url}?{raw_query}" if raw_query else url


def check_signature(
    settings: Settings,
    *,
    url: str,
    params: Any,
    signature: str | None,
    signature_settings: str | None = None,
) -> None:
    """Raise PermissionDenied unless `signature` is Twilio's for `url` and `params`.

    `params` is the form (a dict or a multi-dict with `getlist`).
    """
    token = settings.twilio_auth_token
    if not token:
        raise PermissionDenied("Twilio webhooks are off: no Twilio auth token is configured")
    if not signature:
        raise PermissionDenied("missing X-Twilio-Signature")
    validator = RequestValidator(token)
    algorithm = get_signature_algorithm(signature_settings)
    if not validator.validate(url, params, signature, algorithm=algorithm):
        raise PermissionDenied("wrong X-Twilio-Signature")


# --- shared helpers -----------------------------------------------------------------------------


def _error_code(raw: str | None) -> str | None:
    value = (raw or "").strip()
    return value if value.isdigit() and len(value) <= 10 else None


def _error_reason(code: str | None) -> str | None:
    if code is None:
        return None
    number = int(code)
    return DELIVERY_ERRORS.get(number) or PERMANENT_ERRORS.get(number) or f"Twilio error {code}"


# --- status callbacks ---------------------------------------------------------------------------


def provider_status(
    session: Session,
    *,
    message_id: str | None,
    sid: str | None,
    status: str | None,
    form: Mapping[str, str],
    settings: Settings | None = None,
) -> bool:
    """A message-status or call-status callback, recorded through the shared path (with
    `settings`, an undelivered message fails over to the next provider of its route)."""
    code = _error_code(form.get("ErrorCode"))
    return record_status(
        session,
        message_id=message_id,
        sid=sid,
        status=status,
        error_code=code,
        error_reason=_error_reason(code),
        answered_by=form.get("AnsweredBy") or "",
        settings=settings,
    )


# --- answering-machine detection ----------------------------------------------------------------


def answering_machine(
    session: Session,
    call_control: CallControl | None,
    *,
    message_id: str | None,
    form: Mapping[str, str],
) -> bool:
    """Twilio's AMD verdict on one of our calls. On a machine: "voicemail" on the timeline, the
    call counts as missed (the next contact's step may start at once), and once the transaction
    commits the live call plays the voicemail and hangs up. True when it acted."""
    sid = (form.get("CallSid") or "").strip()
    answered_by = (form.get("AnsweredBy") or "").strip().lower()
    if not sid or answered_by not in MACHINE_ANSWERS:
        return False  # a person (or Twilio could not tell): the script with the keys goes on
    row = find_row(session, message_id, sid)
    if row is None or row.kind is not ChannelKind.voice or row.provider_id != sid:
        return False  # not our call, or news about an older attempt of a resent row
    incident = incident_of(session, row)
    if incident is None:
        return False
    if not first_receipt(session, f"amd:{sid}"):
        return False
    running = incident.status in _LIVE
    timeline.record(
        session,
        incident,
        "voicemail",
        label="provider",
        channel=ChannelKind.voice.value,
        message_id=row.id,
        contact_id=row.contact_id,
        answered_by=answered_by,
        left_message=running,
        **({"user_id": row.user_id} if row.user_id else {}),
    )
    if incidents.record_missed_call(session, incident, message=row, outcome="voicemail"):
        metrics.call_missed("voicemail")
    site = session.get(Site, incident.site_id)
    if running:
        office = display_phone(site.office_phone) if site and site.office_phone else None
        content = twiml.voicemail_twiml(
            row.language, reference=incident.reference, office_phone=office
        )
    else:
        content = HANG_UP_TWIML  # someone is coming already, or it is over: nothing to say
    on_commit(session, lambda: leave_voicemail(call_control, sid, content))
    return True


def leave_voicemail(call_control: CallControl | None, sid: str, content: str) -> None:
    """After the commit: replace the live call's TwiML. A failure is logged and counted, not
    raised: the callback was recorded, the escalation has moved on, and the call goes on with
    its own script until it ends."""
    if call_control is None:
        log.warning("no Twilio channel to leave a voicemail on call %s", sid)
        metrics.voicemail("not_left")
        return
    try:
        call_control.update_call(provider_id=sid, twiml=content)
    except ChannelError as error:
        log.warning("voicemail on call %s not left: %s", sid, error.reason)
        metrics.voicemail("not_left")
        return
    except Exception:  # after the commit nothing may fail the request
        log.exception("voicemail on call %s not left", sid)
        metrics.voicemail("not_left")
        return
    metrics.voicemail("left")


# --- the keypress (Gather action) ---------------------------------------------------------------


def _call_script(
    session: Session, settings: Settings, row: OutboxMessage
) -> tuple[str, CallPurpose, Site | None]:
    """The message the call read out, rendered again for a repeat (the dispatcher's own
    rendering), with its prompt purpose and the row's site."""
    site_id = message_id_of(row.params.get("site_id"))
    site = session.get(Site, site_id) if site_id else None
    try:
        script = render(session, row, settings)
    except RenderError:
        return "", "found", site
    if not isinstance(script, CallScript):
        return "", "found", site
    return script.text, script.purpose, site


def gather(
    session: Session,
    settings: Settings,
    *,
    message_id: str | None,
    attempt: str | None,
    form: Mapping[str, str],
) -> str:
    """Answer the Gather action with TwiML; a 1 confirms, a 2 dials the site office."""
    attempt_no = 2 if (attempt or "").strip() == "2" else 1
    sid = (form.get("CallSid") or "").strip() or None
    digits = (form.get("Digits") or "").strip()
    key = digits[:1] if digits[:1] in VALID_DIGITS else ("?" if digits else "")
    row = find_row(session, message_id, sid)
    if row is None:
        # Not one of our calls (or erased since): say goodbye, record nothing.
        return twiml.gather_twiml(
            None, digits=None, attempt=2, gather_url="", office_phone=None, text=""
        )
    text, purpose, site = _call_script(session, settings, row)
    answer = twiml.gather_twiml(
        row.language,
        digits=key,
        attempt=attempt_no,
        gather_url=webhook_url(settings, "gather", row.id),
        office_phone=site.office_phone if site else None,
        text=text,
        purpose=purpose,
    )
    if row.template == "checkin_call":
        # The resident's own check-in call: a 1 completes the visit (no incident involved).
        visit_id = message_id_of(row.params.get("visit_id"))
        receipt = f"gather:{sid or row.id}:{attempt_no}:{digits[:20]}"
        if key == "1" and visit_id is not None and first_receipt(session, receipt):
            visits.confirm_checkin(session, visit_id=visit_id, via="keypress")
        return answer
    if row.template == contact_tests.TEMPLATE:
        # A contact test call: a 1 proves the number reaches them (no incident involved).
        receipt = f"gather:{sid or row.id}:{attempt_no}:{digits[:20]}"
        if key == "1" and first_receipt(session, receipt):
            contact_checks.verify_by_key(session, row)
        return answer
    incident = incident_of(session, row)
    if not key or incident is None:
        return answer
    if not first_receipt(session, f"gather:{sid or row.id}:{attempt_no}:{digits[:20]}"):
        return answer
    timeline.record(
        session,
        incident,
        "key_pressed",
        label="contact" if row.contact_id else "manager",
        channel=ChannelKind.voice.value,
        digit=key,
        attempt=attempt_no,
        message_id=row.id,
        contact_id=row.contact_id,
        **({"user_id": row.user_id} if row.user_id else {}),
    )
    if key == "1":
        if row.contact_id is not None:
            incidents.confirm(
                session=session,
                incident=incidents.answered_incident(session, incident),
                via="keypress",
                contact_id=row.contact_id,
            )
        elif row.user_id is not None:
            # The duty manager pressing 1 takes the response over: a person is on it.
            manager = Actor(user_id=row.user_id, role=Role.manager)
            incidents.confirm(session=session, incident=incident, via="manager", actor=manager)
    return answer


# --- inbound SMS --------------------------------------------------------------------------------

_LIVE = (IncidentStatus.open, IncidentStatus.notifying)


def _latest_row_to(session: Session, phone: str) -> OutboxMessage | None:
    """The newest contact message to `phone` of a live incident, else of a confirmed one."""
    for statuses in (_LIVE, (IncidentStatus.confirmed,)):
        row = session.exec(
            select(OutboxMessage)
            .join(Incident, col(Incident.id) == col(OutboxMessage.incident_id))
            .where(
                OutboxMessage.to_phone == phone,
                col(OutboxMessage.contact_id).is_not(None),
                col(Incident.status).in_(statuses),
            )
            .order_by(col(OutboxMessage.created_at).desc())
        ).first()
        if row is not None:
            return row
    return None


def _audit_opt_change(
    session: Session, contact: Contact, opt: str, incident: Incident | None
) -> None:
    """A contact's own STOP or START changes their record: the access audit keeps who (the
    contact, by SMS), what and when, like any other change; ids only."""
    resident = session.get(Resident, contact.resident_id)
    audit.record(
        session,
        actor=Actor.system(),
        action="contact.sms_opt_out" if opt == "stop" else "contact.sms_opt_in",
        entity="contact",
        entity_id=contact.id,
        resident_id=contact.resident_id,
        site_id=resident.site_id if resident else None,
        purpose=f"incident {incident.id}" if incident else None,
        detail={"via": "sms_reply", "sms_opted_out": opt == "stop"},
    )


def inbound_sms(session: Session, *, form: Mapping[str, str]) -> None:
    """A contact's reply by SMS or WhatsApp: confirm, or mirror Twilio's STOP/START onto the
    contact (an SMS's only: a WhatsApp STOP is WhatsApp's own business, not an SMS opt-out)."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    sender = (form.get("From") or "").strip()
    channel = ChannelKind.whatsapp if sender.startswith("whatsapp:") else ChannelKind.sms
    sender = sender.removeprefix("whatsapp:")
    if not sid or not sender:
        return
    contacts = list(session.exec(select(Contact).where(Contact.phone == sender)).all())
    if not contacts:
        return  # not a number we wrote to: nothing to do, nothing to keep
    if not first_receipt(session, f"inbound:{sid}"):
        return
    body = form.get("Body") or ""
    reply = messages.classify_reply(body)
    opt = reply if reply in ("stop", "start") else messages.twilio_opt_change(body)
    if channel is ChannelKind.whatsapp:
        opt = None
    changed: list[Contact] = []
    row = _latest_row_to(session, sender)
    incident = incident_of(session, row) if row else None
    if opt is not None:
        for contact in contacts:
            if contact.sms_opted_out != (opt == "stop"):
                contact.sms_opted_out = opt == "stop"
                session.add(contact)
                changed.append(contact)
                _audit_opt_change(session, contact, opt, incident)
    if row is None or incident is None:
        return
    timeline.record(
        session,
        incident,
        "sms_reply",
        label="contact",
        channel=channel.value,
        reply=reply or "other",
        message_id=row.id,
        contact_id=row.contact_id,
    )
    if opt == "stop":
        timeline.record(
            session, incident, "sms_opt_out", label="contact", contact_id=row.contact_id
        )
    elif opt == "start" and changed:
        timeline.record(session, incident, "sms_opt_in", label="contact", contact_id=row.contact_id)
    if reply == "confirm":
        incidents.confirm(
            session=session,
            incident=incidents.answered_incident(session, incident),
            via="sms_reply" if channel is ChannelKind.sms else "whatsapp_reply",
            contact_id=row.contact_id,
        )
