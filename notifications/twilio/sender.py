"""From the dispatcher's neutral `Outgoing` to Twilio's requests: an SMS with its delivery-status
callback; a call as TwiML (`twiml.call_twiml`: the script, its keys, said twice) with its
status callback and, for incident calls, answering-machine detection reporting to the
`answered-by` webhook.

`TwilioSender` wraps anything with Twilio's two requests (`send_sms`, `place_call`): the real
REST client (`TwilioChannel` in client.py, which is also a sender itself through it) or a test's
stand-in for that client.
"""

from __future__ import annotations

from typing import Protocol

from notifications.channels import Accepted, CallScript, Outgoing, Text
from notifications.twilio import twiml
from notifications.twilio.urls import webhook_url
from welfare.channels import ChannelKind
from welfare.settings import Settings
from welfare.whatsapp_templates import parse_templates


class TwilioRequests(Protocol):
    name: str

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
    ) -> Accepted: ...

    def send_whatsapp(
        self,
        *,
        to: str,
        body: str,
        status_callback: str | None,
        idempotency_key: str,
        content_sid: str | None = None,
        content_variables: dict[str, str] | None = None,
    ) -> Accepted: ...

    def place_call(
        self,
        *,
        to: str,
        twiml: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
        machine_callback: str | None = None,
    ) -> Accepted: ...


class TwilioSender:
    def __init__(self, requests: TwilioRequests, settings: Settings) -> None:
        self.requests = requests
        self.settings = settings
        self.name = requests.name
        self.whatsapp_templates = parse_templates(settings.twilio_whatsapp_templates)

    def send(self, outgoing: Outgoing) -> Accepted:
        content = outgoing.content
        if isinstance(content, Text) and outgoing.kind is ChannelKind.whatsapp:
            return self._whatsapp(outgoing, content)
        if isinstance(content, Text):
            return self.requests.send_sms(
                to=outgoing.to,
                body=content.body,
                idempotency_key=outgoing.idempotency_key,
                status_callback=webhook_url(self.settings, "message-status", outgoing.message_id),
                language=outgoing.language,
            )
        assert isinstance(content, CallScript)
        return self.requests.place_call(
            to=outgoing.to,
            twiml=call_twiml(self.settings, outgoing, content),
            idempotency_key=outgoing.idempotency_key,
            status_callback=webhook_url(self.settings, "call-status", outgoing.message_id),
            language=outgoing.language,
            machine_callback=webhook_url(self.settings, "answered-by", outgoing.message_id)
            if content.detect_machine
            else None,
        )

    def _whatsapp(self, outgoing: Outgoing, content: Text) -> Accepted:
        """The approved template for this message and language when there is one (its
        variables from the text's fields), else the text itself."""
        template = self.whatsapp_templates.get(outgoing.template)
        sid = template.sid_for(outgoing.language) if template else None
        variables = (
            {
                str(n): str(content.fields.get(name) or "")
                for n, name in enumerate(template.variables, 1)
            }
            if template and sid
            else None
        )
        return self.requests.send_whatsapp(
            to=outgoing.to,
            body=content.body,
            idempotency_key=outgoing.idempotency_key,
            status_callback=webhook_url(self.settings, "message-status", outgoing.message_id),
            content_sid=sid,
            content_variables=variables,
        )

    def rate_key(self, kind: ChannelKind) -> str:
        """Twilio counts SMS against the messaging service when one is set, else against the
        from-number; calls always come from the number."""
        if kind is ChannelKind.sms and self.settings.twilio_messaging_service_sid:
            sender = self.settings.twilio_messaging_service_sid
        elif kind is ChannelKind.whatsapp:
            sender = self.settings.twilio_whatsapp_from or self.name
        else:
            sender = self.settings.twilio_from_number or self.name
        return f"{kind.value}:{sender}"


def call_twiml(settings: Settings, outgoing: Outgoing, script: CallScript) -> str:
    """The call's TwiML; its keys post to the `gather` webhook of this row."""
    return twiml.call_twiml(
        outgoing.language,
        text=script.text,
        gather_url=webhook_url(settings, "gather", outgoing.message_id),
        purpose=script.purpose,
    )
