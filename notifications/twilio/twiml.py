"""TwiML for the found-resident and check-in calls, and for the keypress (Gather) webhook.

The call flow, in the contact's language (`messages.say_language`):

1. `call_twiml` is sent inline with the call. It reads the message and the prompt ("press 1 if
   you are coming, press 2 to be connected to the office") inside a `<Gather numDigits="1">`
   whose action is `gather_url?attempt=1`. When nobody presses a key (a voicemail, a person who
   says "hello?" and waits) Twilio falls through to a second, identical Gather with
   `attempt=2`: the message is repeated once. After that, a goodbye and a hang-up.
2. A key posts `Digits` to the action URL; the webhook answers with `gather_twiml`:
   1 = thanks and hang up (the webhook records the confirmation); 2 = `<Dial>` the site office;
   any other key on attempt 1 = "not an option" and the message once more (attempt 2);
   any other key on attempt 2 = goodbye.

3. When Twilio's answering-machine detection says a machine took the call, the webhook replaces
   the live call's TwiML with `voicemail_twiml`: the short voicemail, once, and a hang-up.

`gather_url` is built by the caller (the dispatcher or the webhook) as an absolute URL under
`WELFARE_PUBLIC_BASE_URL`, already carrying whatever identifies the outbox row; it may have its
own query string. Only the `attempt` parameter is set here. Twilio signs the action request
against that exact URL, so the webhook must validate against the full URL it was called on.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from twilio.twiml.voice_response import VoiceResponse

from notifications import messages
from notifications.messages import CallPurpose

GATHER_TIMEOUT_SECONDS = 8
# What each key does here is `notifications.channels.CALL_KEYS`: 1 confirms, 2 dials the office.
DIAL_TIMEOUT_SECONDS = 30
# Twilio refuses inline TwiML longer than this for calls.create(twiml=...).
MAX_INLINE_TWIML = 4000


def with_attempt(url: str, attempt: int) -> str:
    """`url` with its `attempt` query parameter set (other parameters kept, in order)."""
    parts = urlsplit(url)
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key != "attempt"
    ]
    query.append(("attempt", str(attempt)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _gather(
    response: VoiceResponse, lang: str | None, *, text: str, prompt: str, action: str
) -> None:
    language = messages.say_language(lang)
    gather = response.gather(
        num_digits=1,
        action=action,
        method="POST",
        timeout=GATHER_TIMEOUT_SECONDS,
    )
    if text:
        gather.say(text, language=language)
    gather.say(prompt, language=language)


def call_twiml(
    lang: str | None,
    *,
    text: str,
    gather_url: str,
    purpose: CallPurpose = "found",
) -> str:
    """The whole call: message and prompt, repeated once if no key is pressed, then goodbye.

    `text` is `messages.found_call_text(...)` or `messages.checkin_call_text(...)`; the prompt
    comes from `purpose`.
    """
    response = VoiceResponse()
    prompt = messages.call_prompt(lang, purpose)
    for attempt in (1, 2):
        _gather(response, lang, text=text, prompt=prompt, action=with_attempt(gather_url, attempt))
    response.say(messages.call_goodbye(lang), language=messages.say_language(lang))
    response.hangup()
    return str(response.to_xml())


def gather_twiml(
    lang: str | None,
    *,
    digits: str | None,
    attempt: int,
    gather_url: str,
    office_phone: str | None,
    text: str = "",
    purpose: CallPurpose = "found",
) -> str:
    """The answer to the Gather action: what Twilio does after the key `digits`.

    `text` is the message to repeat after a wrong key on attempt 1 (the webhook re-renders it
    from the outbox row); without it only the prompt is repeated. `office_phone` is the site
    office in E.164; without one, key 2 gets an apology and a goodbye.
    """
    language = messages.say_language(lang)
    response = VoiceResponse()
    key = (digits or "").strip()[:1]
    if key == "1":
        response.say(messages.call_thanks(lang, purpose), language=language)
        response.hangup()
    elif key == "2":
        if office_phone:
            response.say(messages.call_connecting(lang), language=language)
            dial = response.dial(timeout=DIAL_TIMEOUT_SECONDS)
            dial.number(office_phone)
        # Reached when the office call ends, answered or not.
        response.say(messages.call_after_office(lang), language=language)
        response.hangup()
    elif attempt <= 1:
        if key:
            response.say(messages.call_not_understood(lang), language=language)
        _gather(
            response,
            lang,
            text=text,
            prompt=messages.call_prompt(lang, purpose),
            action=with_attempt(gather_url, 2),
        )
        response.say(messages.call_goodbye(lang), language=language)
        response.hangup()
    else:
        response.say(messages.call_goodbye(lang), language=language)
        response.hangup()
    return str(response.to_xml())


def voicemail_twiml(lang: str | None, *, reference: str, office_phone: str | None) -> str:
    """What an answering machine records (`messages.voicemail_text`), then hang up."""
    response = VoiceResponse()
    text = messages.voicemail_text(lang, reference=reference, office_phone=office_phone)
    response.say(text, language=messages.say_language(lang))
    response.hangup()
    return str(response.to_xml())
