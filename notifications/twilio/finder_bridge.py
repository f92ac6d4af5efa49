# Chinese text uses fullwidth punctuation (，：。) on purpose.
# ruff: noqa: RUF001, RUF003
"""The finder's call: talk without numbers (issue 20).

The tag's public page shows the site's voice number and the tag's call reference. A finder who
calls it hears a short greeting in English, Chinese and Korean and types the reference
(`<Gather>`); the call is then put through (`<Dial>`, with the site's voice number as caller id,
so the finder never sees the family's number and the family never sees the finder's) to the
office during its hours, otherwise to the family's contacts one after another (under the
resident's finder_alerts consent), failing that to the office. Which numbers, in which order,
and what goes on the incident's timeline is decided in welfare/incidents/public_reports.py
(`plan_call`, `record_call`); this module only speaks TwiML.

The routes (api/routes/webhooks.py, under /webhooks/twilio/finder/) are signature-checked like
every other Twilio webhook. Flow:

1. `/finder/voice` (the number's voice URL): greeting + Gather for the reference, action
   `/finder/reference?attempt=1`.
2. `/finder/reference`: an unknown reference gets one more try (attempt 2), then a goodbye
   with the advice to call the emergency number if the person is in danger. A known one gets
   a Dial of the first leg, action `/finder/dialled?plan=...&leg=0`.
3. `/finder/dialled`: Twilio's DialCallStatus of the leg, on the timeline; when nobody answered
   and legs remain, the next is dialled; otherwise a goodbye.

The legs are carried in the action URL only by index: the plan is worked out again from the
reference on every step (it is in the signed URL), so no phone number ever leaves the server in
a URL.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlmodel import Session
from twilio.twiml.voice_response import VoiceResponse

from notifications import messages
from welfare.incidents import public_reports
from welfare.settings import Settings

PATH = "/webhooks/twilio/finder"
REFERENCE_TIMEOUT_SECONDS = 10
DIAL_TIMEOUT_SECONDS = 25
ANSWERED = "completed"  # DialCallStatus of a leg somebody picked up (and then hung up)

GREETING = {
    "en": "Thank you for calling. Please type the reference shown on the page, then wait.",
    "zh-CN": "感谢您的来电。请输入页面上显示的编号，然后稍候。",
    "ko-KR": "전화해 주셔서 감사합니다. 페이지에 표시된 참조 번호를 누르고 기다려 주세요.",
}
NOT_RECOGNISED = {
    "en": "That reference was not recognised.",
    "zh-CN": "无法识别这个编号。",
    "ko-KR": "참조 번호를 확인할 수 없습니다.",
}
CONNECTING = {
    "en": "Connecting you now. Your number is not shown to them.",
    "zh-CN": "正在为您接通。对方看不到您的号码。",
    "ko-KR": "지금 연결해 드립니다. 상대방에게 번호가 보이지 않습니다.",
}
TRYING_NEXT = {
    "en": "No answer. Trying someone else.",
    "zh-CN": "无人接听，正在尝试其他人。",
    "ko-KR": "응답이 없습니다. 다른 분께 연결합니다.",
}
GOODBYE = {
    "en": "Nobody could be reached. Please stay with the person and call the office. If they "
    "are in danger, call the emergency number. Goodbye.",
    "zh-CN": "暂时无法接通。请陪着这位人士并致电管理处。如有危险，请拨打紧急电话。再见。",
    "ko-KR": "연결되지 않았습니다. 그분 곁에 있어 주시고 관리사무소에 전화해 주세요. 위험하면 "
    "긴급 번호로 전화하세요. 안녕히 계세요.",
}


def _say_all(target: VoiceResponse | object, words: dict[str, str]) -> None:
    """The same words in each language, English first (a finder may speak any of them)."""
    for lang in messages.LANGUAGES:
        target.say(words[lang], language=messages.say_language(lang))  # type: ignore[attr-defined]


def _url(settings: Settings, step: str, **query: str) -> str:
    base = f"{settings.public_base_url.rstrip('/')}{PATH}/{step}"
    return f"{base}?{urlencode(query)}" if query else base


def _gather(response: VoiceResponse, settings: Settings, attempt: int) -> None:
    gather = response.gather(
        num_digits=public_reports.CALL_REFERENCE_DIGITS,
        action=_url(settings, "reference", attempt=str(attempt)),
        method="POST",
        timeout=REFERENCE_TIMEOUT_SECONDS,
    )
    _say_all(gather, GREETING)


def _goodbye(response: VoiceResponse) -> str:
    _say_all(response, GOODBYE)
    response.hangup()
    return str(response.to_xml())


def answer(settings: Settings) -> str:
    """The finder's call is answered: greeting and a Gather for the reference."""
    response = VoiceResponse()
    _gather(response, settings, 1)
    return _goodbye(response)


def _dial(
    response: VoiceResponse,
    settings: Settings,
    plan: public_reports.CallPlan,
    *,
    reference: str,
    leg: int,
) -> None:
    dial = response.dial(
        caller_id=plan.caller_id,
        action=_url(settings, "dialled", reference=reference, leg=str(leg)),
        method="POST",
        timeout=DIAL_TIMEOUT_SECONDS,
        answer_on_bridge=True,
    )
    dial.number(plan.legs[leg].phone)


def _plan(
    session: Session, settings: Settings, *, reference: str, caller: str
) -> public_reports.CallPlan | None:
    return public_reports.plan_call(
        session=session,
        secret=settings.secret_key,
        reference=reference,
        caller=caller,
        default_voice=settings.twilio_from_number,
    )


def reference(
    session: Session, settings: Settings, *, digits: str, caller: str, attempt: str | None
) -> str:
    """The finder typed a reference: put them through to the first leg, or try once more."""
    response = VoiceResponse()
    plan = _plan(session, settings, reference=digits, caller=caller) if digits else None
    if plan is None:
        _say_all(response, NOT_RECOGNISED)
        if attempt == "1":
            _gather(response, settings, 2)
        return _goodbye(response)
    if not plan.legs:
        return _goodbye(response)
    _record(session, plan, 0, "dialling")
    _say_all(response, CONNECTING)
    _dial(response, settings, plan, reference=digits, leg=0)
    return _goodbye(response)


def _record(session: Session, plan: public_reports.CallPlan, leg: int, status: str) -> None:
    chosen = plan.legs[leg]
    public_reports.record_call(
        session,
        incident_id=plan.incident_id,
        leg=leg,
        target=chosen.target,
        contact_id=chosen.contact_id,
        status=status,
    )


def dialled(
    session: Session,
    settings: Settings,
    *,
    reference_digits: str | None,
    leg: str | None,
    status: str | None,
) -> str:
    """How a leg ended: on the timeline; nobody answered and another leg remains: dial it."""
    response = VoiceResponse()
    digits = reference_digits or ""
    found = public_reports.tag_for_call(session, secret=settings.secret_key, reference=digits)
    index = int(leg) if leg and leg.isdigit() else -1
    if found is None or index < 0:
        return _goodbye(response)
    plan = _plan_again(session, settings, digits)
    if plan is None or index >= len(plan.legs):
        return _goodbye(response)
    _record(session, plan, index, (status or "unknown")[:20])
    if status == ANSWERED or index + 1 >= len(plan.legs):
        response.hangup()
        return str(response.to_xml())
    _record(session, plan, index + 1, "dialling")
    _say_all(response, TRYING_NEXT)
    _dial(response, settings, plan, reference=digits, leg=index + 1)
    return _goodbye(response)


def _plan_again(
    session: Session, settings: Settings, digits: str
) -> public_reports.CallPlan | None:
    """The plan for a call already under way: the same legs, without reporting it again."""
    return public_reports.replan_call(
        session=session,
        secret=settings.secret_key,
        reference=digits,
        default_voice=settings.twilio_from_number,
    )
