"""Twilio callbacks under /webhooks/twilio/: form-encoded, signature-checked, no bearer token.

Thin: check the signature, read the form, let notifications/twilio/webhooks.py act on it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.deps import SessionDep, SettingsDep, TransactionRoute
from notifications.twilio import finder_bridge, urls, webhooks
from notifications.twilio.webhooks import CallControl
from welfare.errors import UnsupportedMedia

router = APIRouter(route_class=TransactionRoute, prefix=urls.PREFIX, tags=["twilio webhooks"])

XML = "application/xml"
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


async def signed_form(request: Request, settings: SettingsDep) -> dict[str, str]:
    """The form of a request Twilio signed for the public URL of this route; 415 for any other
    body than a URL-encoded form (Twilio sends nothing else, and a multipart file part would
    reach the signature check as an object), 403 for a wrong signature."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise UnsupportedMedia(f"webhooks take {FORM_MEDIA_TYPE} only")
    form = await request.form()
    url = webhooks.public_url(settings, request.scope["route"].path, request.url.query)
    webhooks.check_signature(
        settings,
        url=url,
        params=form,
        signature=request.headers.get("x-twilio-signature"),
        signature_settings=request.headers.get("x-twilio-webhooks-signature-settings"),
    )
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(signed_form)]


def call_control(request: Request) -> CallControl | None:
    """What changes a live call (the app's Twilio channel; None without Twilio credentials)."""
    return getattr(request.app.state, "call_control", None)


CallControlDep = Annotated[CallControl | None, Depends(call_control)]


def _xml(content: str = webhooks.EMPTY_TWIML) -> Response:
    return Response(content=content, media_type=XML)


@router.post("/message-status", response_class=Response)
def message_status(
    form: FormDep, session: SessionDep, settings: SettingsDep, message_id: str | None = None
) -> Response:
    webhooks.provider_status(
        session,
        message_id=message_id,
        sid=form.get("MessageSid") or form.get("SmsSid"),
        status=form.get("MessageStatus") or form.get("SmsStatus"),
        form=form,
        settings=settings,
    )
    return _xml()


@router.post("/call-status", response_class=Response)
def call_status(form: FormDep, session: SessionDep, message_id: str | None = None) -> Response:
    webhooks.provider_status(
        session,
        message_id=message_id,
        sid=form.get("CallSid"),
        status=form.get("CallStatus"),
        form=form,
    )
    return _xml()


@router.post("/answered-by", response_class=Response)
def answered_by(
    form: FormDep, session: SessionDep, control: CallControlDep, message_id: str | None = None
) -> Response:
    """Twilio's asynchronous answering-machine verdict; a machine gets the voicemail."""
    webhooks.answering_machine(session, control, message_id=message_id, form=form)
    return _xml()


@router.post("/gather", response_class=Response)
def gather(
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    message_id: str | None = None,
    attempt: str | None = None,
) -> Response:
    return _xml(
        webhooks.gather(session, settings, message_id=message_id, attempt=attempt, form=form)
    )


@router.post("/inbound-sms", response_class=Response)
def inbound_sms(form: FormDep, session: SessionDep) -> Response:
    webhooks.inbound_sms(session, form=form)
    return _xml()


# --- the finder's call (notifications/twilio/finder_bridge.py) ----------------------------------


@router.post("/finder/voice", response_class=Response)
def finder_voice(form: FormDep, settings: SettingsDep) -> Response:
    """A finder calls the site's voice number: the greeting and a Gather for the reference."""
    return _xml(finder_bridge.answer(settings))


@router.post("/finder/reference", response_class=Response)
def finder_reference(
    form: FormDep, session: SessionDep, settings: SettingsDep, attempt: str | None = None
) -> Response:
    """The finder typed the reference: put through to the office or the family."""
    return _xml(
        finder_bridge.reference(
            session,
            settings,
            digits=form.get("Digits", ""),
            caller=form.get("From", ""),
            attempt=attempt,
        )
    )


@router.post("/finder/dialled", response_class=Response)
def finder_dialled(
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    reference: str | None = None,
    leg: str | None = None,
) -> Response:
    """How a leg of the finder's call ended; the next leg when nobody answered."""
    return _xml(
        finder_bridge.dialled(
            session,
            settings,
            reference_digits=reference,
            leg=leg,
            status=form.get("DialCallStatus"),
        )
    )
