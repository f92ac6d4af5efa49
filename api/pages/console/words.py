"""The words the console shows for the codes the domain stores (statuses, kinds, timeline
events, reasons, channels), marked for translation and looked up in the page's language."""

from __future__ import annotations

from api.pages.i18n import N_, gettext

STATUS_LABELS = {
    "open": N_("Open"),
    "notifying": N_("Notifying"),
    "confirmed": N_("Confirmed"),
    "resolved": N_("Resolved"),
    "cancelled": N_("Cancelled"),
}
KIND_LABELS = {
    "found": N_("Found resident"),
    "missing": N_("Missing resident"),
    "welfare_concern": N_("Welfare concern"),
}
FOUND_BY_PUBLIC = N_("Found by a member of the public")
CONDITION_LABELS = {"well": N_("Well"), "distressed": N_("Distressed"), "injured": N_("Injured")}
OUTCOME_LABELS = {
    "handed_over": N_("Handed over"),
    "returned_home": N_("Returned home"),
    "hospital": N_("Hospital"),
    "police": N_("Police"),
    "false_alarm": N_("False alarm"),
}
EVENT_LABELS = {
    "reported": N_("Reported"),
    "report_repeated": N_("Reported again"),
    "found": N_("Found"),
    "guards_alerted": N_("Guards on duty alerted"),
    "escalation_planned": N_("Escalation planned"),
    "escalation_step": N_("Escalation step started"),
    "step_failed": N_("Step reached no one"),
    "queued": N_("Message queued"),
    "sent": N_("Handed to the provider"),
    "all_clear_queued": N_("All-clear SMS queued"),
    "all_clear_sent": N_("All-clear SMS handed to the provider"),
    "failover": N_("Provider failed: sent again through the next provider"),
    "whatsapp_fallback": N_("WhatsApp did not reach them: sent by SMS instead"),
    "retry_scheduled": N_("Retry scheduled"),
    "push_fallback": N_("Push failed: SMS instead"),
    "send_cancelled": N_("Sending cancelled"),
    "possibly_sent": N_("Possibly sent: the provider's answer was lost"),
    "held_back": N_("Held back: a limit per recipient"),
    "failed": N_("Failed"),
    "sent_to_carrier": N_("Sent to the carrier"),
    "delivered": N_("Delivered"),
    "undelivered": N_("Not delivered"),
    "ringing": N_("Ringing"),
    "answered": N_("Answered"),
    "call_ended": N_("Call ended"),
    "busy": N_("Busy"),
    "no_answer": N_("No answer"),
    "call_cancelled": N_("Call cancelled"),
    "voicemail": N_("Voicemail"),
    "call_missed": N_("Call ended without a key"),
    "key_pressed": N_("Key pressed"),
    "sms_reply": N_("SMS reply"),
    "sms_opt_out": N_("Opted out of SMS"),
    "sms_opt_in": N_("Opted in to SMS"),
    "answer_link_opened": N_("Answer link opened"),
    "answer_link_coming": N_("Answered on the link: coming"),
    "answer_link_cannot": N_("Answered on the link: cannot come"),
    "confirmed": N_("Confirmed: someone is coming"),
    "note": N_("Note"),
    "handed_over": N_("Handed over"),
    "resolved": N_("Resolved"),
    "cancelled": N_("Cancelled"),
    "photo_refresh_due": N_("Photo is old: take a new one"),
    "photo_added": N_("Photo added"),
    "photo_deleted": N_("Photo deleted"),
    "claimed": N_("A guard took it on"),
    "public_report": N_("Reported by a member of the public"),
    "finder_location_erased": N_("The finder's shared location erased"),
    "finder_call": N_("A finder's call put through"),
    "visit_concern": N_("Concern from a welfare visit"),
    "checkin_unanswered": N_("Check-in calls not answered"),
}
# A visit's outcome on a "visit_concern" event (no outcome recorded: the check-in went unanswered).
VISIT_OUTCOME_LABELS = {
    "well": N_("Well"),
    "concern": N_("Concern"),
    "not_home": N_("Not home"),
    "refused": N_("Refused"),
    "hospitalised": N_("Hospitalised"),
    "no_answer": N_("No answer"),
}
# How a contact's call ended without a key (a "call_missed" event's outcome).
CALL_OUTCOME_LABELS = {
    "voicemail": N_("voicemail"),
    "no_answer": N_("no answer"),
    "busy": N_("busy"),
    "no_key": N_("hung up without a key"),
    "failed": N_("call failed"),
    "cancelled": N_("call cancelled"),
}
# The fixed reasons the services write on events (a provider's error text is shown as it is).
REASON_LABELS = {
    "contact removed": N_("contact removed"),
    "no consent to be contacted": N_("no consent to be contacted"),
    "quiet hours": N_("quiet hours"),
    "no manager with a phone": N_("no manager with a phone"),
    "SMS opted out": N_("SMS opted out"),
    "landline: call only": N_("landline: call only"),
    "every message failed": N_("every message failed"),
    "consent withdrawn": N_("consent withdrawn"),
    "retention": N_("the retention period ended"),
    "incident confirmed": N_("the incident was confirmed"),
    "incident resolved": N_("the incident was resolved"),
    "incident cancelled": N_("the incident was cancelled"),
    "no message text": N_("no message text"),
    "no phone number: erased since the message was queued": N_(
        "no phone number: erased since the message was queued"
    ),
    "duplicate running incident": N_("duplicate running incident"),
    # Why a limit per recipient held a message back (welfare/outbox/limits.py).
    "the same text went to this number earlier": N_("the same text went to this number earlier"),
    "too many messages to this number": N_("too many messages to this number"),
    # Why a push to a staff phone failed (notifications/webpush/sender.py), before its SMS.
    "the phone's push subscription has expired": N_("the phone's push subscription has expired"),
    "the phone unsubscribed": N_("the phone unsubscribed"),
    "the phone's push subscription was removed": N_("the phone's push subscription was removed"),
    "the push service could not be reached": N_("the push service could not be reached"),
    "the push service refused our VAPID key for this phone": N_(
        "the push service refused our VAPID key for this phone"
    ),
}
CHANNEL_LABELS = {
    "sms": N_("SMS"),
    "call": N_("Call"),
    "voice": N_("Call"),
    "whatsapp": N_("WhatsApp"),
    "push": N_("Push notification"),
}
# Outbox states and the provider's words, for a contact's status column.
DELIVERY_LABELS = {
    "pending": N_("waiting"),
    "claimed": N_("waiting"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "failed": N_("failed"),
    "cancelled": N_("not sent (stopped)"),
    "unknown": N_("possibly sent"),
    "held": N_("held back"),
    "queued": N_("queued"),
    "accepted": N_("accepted"),
    "delivered": N_("delivered"),
    "undelivered": N_("not delivered"),
    "ringing": N_("ringing"),
    "in-progress": N_("answered"),
    "answered": N_("answered"),
    "completed": N_("call ended"),
    "busy": N_("busy"),
    "no-answer": N_("no answer"),
    "canceled": N_("call cancelled"),
    "initiated": N_("calling"),
}
VIA_LABELS = {
    "keypress": N_("by pressing 1 on the call"),
    "sms_reply": N_("by SMS reply"),
    "whatsapp_reply": N_("by WhatsApp reply"),
    "answer_link": N_("on the answer link"),
    "manager": N_("by the duty manager"),
    "staff": N_("reached by staff on the phone"),
}
ACTOR_LABELS = {
    "system": N_("system"),
    "guard": N_("guard"),
    "staff": N_("staff"),
    "manager": N_("manager"),
    "admin": N_("admin"),
    "provider": N_("provider"),
    "contact": N_("contact"),
    "public": N_("public"),
}


def label(language: str, table: dict[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return gettext(language, table[code]) if code in table else code


def all_labels(language: str, table: dict[str, str]) -> dict[str, str]:
    return {code: gettext(language, text) for code, text in table.items()}
