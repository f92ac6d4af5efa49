"""What every guard page shows: the words for `static/guard.js` and the names of languages."""

from __future__ import annotations

from typing import Annotated, Any

from babel import Locale, UnknownLocaleError
from fastapi import File, Form, UploadFile

from api.pages.deps import PageUser
from api.pages.i18n import N_, gettext
from welfare.incidents.models import Condition

OptionalText = Annotated[str | None, Form(max_length=2000)]
OptionalPhoto = Annotated[UploadFile | None, File()]

CONDITIONS = [
    (Condition.well.value, N_("Well")),
    (Condition.distressed.value, N_("Distressed or confused")),
    (Condition.injured.value, N_("Injured")),
]
STATUS_LABELS = {
    "open": N_("Reported"),
    "notifying": N_("Contacting the family"),
    "confirmed": N_("Confirmed: someone is coming"),
    "resolved": N_("Closed"),
    "cancelled": N_("Cancelled"),
}
# Words the live incident page's script shows; rendered translated into the page.
LIVE_WORDS = {
    "not_contacted": N_("Not contacted yet"),
    "sms_queued": N_("SMS queued"),
    "sms_sent": N_("SMS sent"),
    "sms_delivered": N_("SMS delivered"),
    "sms_failed": N_("SMS failed"),
    "push_queued": N_("Notification queued"),
    "push_sent": N_("Notification sent"),
    "push_failed": N_("Notification failed"),
    "calling": N_("Calling"),
    "on_call": N_("On the call"),
    "no_answer": N_("No answer"),
    "call_ended": N_("Call ended, no key pressed"),
    "call_failed": N_("Call failed"),
    "confirmed": N_("Confirmed: coming"),
    "duty_manager": N_("Duty manager"),
    "coming": N_("%(who)s is coming"),
    "connection_lost": N_("No connection. Retrying…"),
    "updated": N_("Updated %(time)s"),
}
QUEUE_WORDS = {
    "waiting": N_(
        "Waiting for signal: %(count)s found report(s) will be sent when you are back online."
    ),
    "sent": N_("Your found report was sent."),
    "open": N_("Open the incident"),
    "refused": N_("A queued report was refused: %(reason)s"),
    "sending": N_("Sending…"),
    "located": N_("Location added."),
    "no_location": N_("Location not available. Type where you are."),
    "no_camera": N_("This phone cannot scan here. Type the code from the tag."),
    "camera_denied": N_("The camera is not allowed. Type the code from the tag."),
    "photo_waiting": N_("The photo is kept on this phone and will be sent with the report."),
    "photo_not_kept": N_(
        "The photo cannot be kept on this phone while there is no signal: the report will be "
        "sent without it. Add the photo on the incident page later."
    ),
    "push_on": N_("Alerts are on for this phone: they arrive as notifications, not SMS."),
    "push_denied": N_(
        "Notifications are blocked for this site. Allow them in the browser's settings, then tap "
        "again. Until then alerts come by SMS."
    ),
    "push_failed": N_("Alerts could not be turned on. They still come by SMS. Try again later."),
    "push_off": N_("Alerts for this phone are off: they come by SMS."),
}
# A typed code whose check character does not match (the scan page and the tag URL).
CHECK_THE_CODE = N_(
    "Check the code: a character is wrong or two are swapped. Type it again as it is printed on "
    "the tag."
)
# What happened to a photo sent with a report (`?photo=` on the live incident page).
PHOTO_NOTICES = {
    "added": N_("Photo added."),
    "waiting": N_("The photo will be sent as soon as there is signal."),
    "unsupported": N_("The photo was not added: it must be a JPEG, PNG or WebP picture."),
    "too_large": N_("The photo was not added: it is too large."),
    "unreadable": N_("The photo was not added: it could not be read."),
    "refused": N_("The photo was not added."),
    "not_kept": N_("The photo could not be sent or kept on this phone. Add it again below."),
}


def words(language: str, table: dict[str, str]) -> dict[str, str]:
    return {key: gettext(language, text) for key, text in table.items()}


def language_label(code: str, ui_language: str) -> str:
    """A resident's language ("zh-CN") named in the guard's own language ("Chinese (China)")."""
    try:
        locale = Locale.parse(code.replace("-", "_"))
        return locale.get_display_name(Locale.parse(ui_language.replace("-", "_"))) or code
    except (ValueError, TypeError, UnknownLocaleError):
        return code


def guard_context(page_user: PageUser) -> dict[str, Any]:
    return {
        "queue_words": words(page_user.language, QUEUE_WORDS),
        "langname": lambda code: language_label(code, page_user.language),
    }
