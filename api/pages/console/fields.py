"""What the console's page modules share: the registry forms' field names, hints and
choices, the field-error mappers that turn a refused value into what to give instead, the site
choices of a form and the role names. Defined once here, so no page module imports another for
them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Form
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.pages.deps import PageUser, t
from api.pages.form_errors import FormError
from api.pages.forms import NUL_TEXT, page_value_problem, phone_error
from api.pages.i18n import N_, gettext
from welfare.authz import Permission
from welfare.consent.models import Consent
from welfare.errors import InvalidInput, NotFound
from welfare.phones import InvalidPhone
from welfare.residents.models import Resident
from welfare.sites import service as sites
from welfare.sites.models import Site

PAGE_SIZE = 50
Text200 = Annotated[str, Form(max_length=200)]
Text2000 = Annotated[str, Form(max_length=2000)]
# The browser's id of a send (a test message, a manual notification): a resend is sent once.
RequestId = Annotated[str, Form(min_length=8, max_length=64, pattern=r"^[\w-]+$")]

ROLE_LABELS = {
    "guard": N_("Guard"),
    "staff": N_("Office staff"),
    "manager": N_("Manager"),
    "admin": N_("Admin"),
}

CONSENT_STATE_LABELS = {
    "active": N_("Consent active"),
    "unverified": N_("Consent review overdue"),
    "withdrawn": N_("Withdrawn"),
    "none": N_("No consent"),
}
SCOPE_LABELS = {
    "registry": N_("Keep the record in the registry"),
    "lost_person_response": N_("Lost-person response (guards can identify them)"),
    "welfare_visits": N_("Welfare visits"),
    "photo": N_("Photo"),
    "share_with_responders": N_("Share with police and ambulance"),
    "finder_alerts": N_("Tell the family when a passer-by finds them"),
    "public_care_tips": N_("Show a passer-by the preferred name and care tips"),
}
GIVEN_BY_LABELS = {
    "resident": N_("The resident"),
    "guardian": N_("A guardian"),
    "attorney": N_("An attorney"),
}
METHOD_LABELS = {"written": N_("Written"), "verbal": N_("Verbal"), "electronic": N_("Electronic")}
CONTACT_LANGUAGES = [("zh-CN", "中文 (简体)"), ("en", "English"), ("ko-KR", "한국어")]
DEFAULT_CONTACT_LANGUAGE = "en"
# Field names of the contact and household forms, for error messages.
FIELD_LABELS = {
    "name": N_("Name"),
    "relationship": N_("Relationship"),
    "phone": N_("Phone"),
    "secondary_phone": N_("Second phone"),
    "language": N_("Language"),
    "channels": N_("Channels"),
    "quiet_hours_start": N_("Quiet hours"),
    "quiet_hours_end": N_("Quiet hours"),
    "building": N_("Building"),
    "unit": N_("Unit"),
    "landline": N_("Landline"),
    "full_name": N_("Full name"),
    "household_id": N_("Household"),
    "given_by_name": N_("Given by (name)"),
    "given_by_relationship": N_("Relationship to the resident"),
    "scopes": N_("What it covers"),
    "given_at": N_("Given on"),
    "review_due": N_("Review due"),
    "site_id": N_("Site"),
    "preferred_name": N_("Called (preferred name)"),
    "aliases": N_("Also known as"),
    "languages": N_("Languages"),
    "birth_year": N_("Year of birth"),
    "height_cm": N_("Height (cm)"),
    "places": N_("Places they go"),
    "given_by_kind": N_("Given by"),
    "evidence": N_("Evidence (document reference)"),
    "method": N_("How it was given"),
    "sex": N_("Sex"),
    "risk_level": N_("Risk level"),
    "build": N_("Build"),
    "hair": N_("Hair"),
    "eyes": N_("Eyes"),
    "distinguishing_marks": N_("Distinguishing marks"),
    "clothing": N_("Usual clothing"),
    "approach": N_("How to approach and calm them"),
    "care_needs": N_("Care needs"),
    "medical_notes": N_("Medical notes (never shown to guards)"),
    "routines": N_("Routines"),
    "notes": N_("Notes"),
}


def contact_language_for(resident: Resident) -> str:
    """A new contact's language: the resident's first language the messages exist in (a family
    usually shares it), matched by tag or by language ("ko" and "zh-HK" read ko-KR and zh-CN);
    English otherwise, never a language nobody chose."""
    codes = [code for code, _name in CONTACT_LANGUAGES]
    for tag in resident.languages[:1]:
        if tag in codes:
            return tag
        base = tag.split("-")[0].lower()
        for code in codes:
            if code.split("-")[0].lower() == base:
                return code
    return DEFAULT_CONTACT_LANGUAGE


# What each field of the registry forms expects, said when a value is refused: what is wrong
# and an example of a right value (never the refused value itself).
FIELD_HINTS = {
    "name": N_("Type the contact's name, e.g. Wang Lei (at most 200 characters)."),
    "relationship": N_(
        "Type how they are related to the resident, e.g. son, daughter or neighbour (at most 100"
        " characters)."
    ),
    "language": N_("Choose the language for messages and calls from the list, e.g. English."),
    "channels": N_("Tick at least one way to reach them: SMS or phone call."),
    "quiet_hours_start": N_("Quiet hours need a start and a different end, e.g. 22:00 to 07:00."),
    "quiet_hours_end": N_("Quiet hours need a start and a different end, e.g. 22:00 to 07:00."),
    "full_name": N_("Type the resident's full name, e.g. Wang Jianguo (at most 200 characters)."),
    "household_id": N_(
        "Choose the resident's household from the list, or type its building and unit."
    ),
    "preferred_name": N_(
        "Shorten the preferred name to at most 200 characters, e.g. Grandpa Wang."
    ),
    "aliases": N_(
        "Separate the names with commas, each at most 200 characters, e.g. Lao Wang, Uncle Wang."
    ),
    "languages": N_("Not a language code. Use codes separated by commas, such as ko, zh-CN, en."),
    "places": N_("Write one place a line, each at most 300 characters, e.g. Victoria Park."),
    "birth_year": N_("Type the year of birth as four digits, from 1880 on, e.g. 1940."),
    "height_cm": N_("Type the height in whole centimetres, from 40 to 250, e.g. 165."),
    "sex": N_("Choose female, male, other or not recorded from the list."),
    "risk_level": N_("Choose low, medium or high from the list."),
    "given_by_kind": N_("Choose who gave the consent: the resident, a guardian or an attorney."),
    "given_by_name": N_(
        "Type the name of the person who gave the consent, e.g. Wang Lei (at most 200 characters)."
    ),
    "given_by_relationship": N_(
        "Say how a guardian or attorney is related to the resident, e.g. son (at most 100"
        " characters)."
    ),
    "method": N_("Choose how the consent was given: written, verbal or electronic."),
    "scopes": N_("Tick at least one thing the consent covers."),
    "given_at": N_("Type a date that is not in the future, e.g. 2026-03-01, or leave it empty."),
    "site_id": N_("Choose the site from the list."),
    "building": N_("Type the building, e.g. 1 or Block A (at most 50 characters)."),
    "unit": N_("Type the unit, e.g. 1609 (at most 50 characters)."),
}


def _model_error_field(error: Any) -> str:
    """The field a refused value belongs to; the model-wide checks name theirs in the message."""
    if error["loc"]:
        return str(error["loc"][0])
    message = str(error.get("msg", ""))
    if "NUL" in message:
        return "form"
    if "quiet" in message:
        return "quiet_hours_start"
    if "birth" in message:
        return "birth_year"
    return "form"


def _hint(page_user: PageUser, field: str, error: Any = None) -> str:
    if field == "form" and error is not None and "NUL" in str(error.get("msg", "")):
        return gettext(page_user.language, NUL_TEXT)
    if field in FIELD_HINTS:
        return gettext(page_user.language, FIELD_HINTS[field])
    if error is not None:
        return page_value_problem(page_user.language, error)
    return gettext(page_user.language, NUL_TEXT)


def field_errors(page_user: PageUser, exc: Exception) -> dict[str, str]:
    """Errors keyed by form field, in the user's language: what is wrong with the field and an
    example of a right value. Never echoes the input."""
    errors: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            field = _model_error_field(error)
            errors.setdefault(field, _hint(page_user, field, error))
    elif isinstance(exc, InvalidPhone):
        errors[str(exc.loc[-1]) if exc.loc else "phone"] = phone_error(page_user.language, exc)
    elif isinstance(exc, InvalidInput):
        field = str(exc.loc[-1]) if exc.loc else "form"
        if field in FIELD_HINTS:
            errors[field] = gettext(page_user.language, FIELD_HINTS[field])
        else:  # the domain's own explanation, in English, rather than nothing
            errors[field] = exc.message
    return errors


def error_summary(page_user: PageUser, errors: dict[str, str]) -> str:
    names = [
        t(page_user, FIELD_LABELS[f]) if f in FIELD_LABELS else f for f in errors if f != "form"
    ]
    if not names:
        return errors.get("form") or gettext(page_user.language, "Please check what you entered.")
    return gettext(page_user.language, "Please check: %(fields)s") % {
        "fields": ", ".join(dict.fromkeys(names))
    }


def refused_fields(
    page_user: PageUser, exc: Exception, redraw: Callable[..., Response]
) -> FormError:
    """The form again, each refused field with what to give instead and a summary naming them."""
    errors = field_errors(page_user, exc)
    return FormError(redraw, errors=errors, error=error_summary(page_user, errors))


def erased(page_user: PageUser, redraw: Callable[..., Response]) -> FormError:
    """The resident's page again: the record was erased (consent withdrawn) meanwhile."""
    error = gettext(page_user.language, "This record was erased after consent was withdrawn.")
    return FormError(redraw, error=error, status_code=409)


def visible_sites(session: Session, page_user: PageUser) -> list[Site]:
    rows, _ = sites.list_sites(session=session, actor=page_user.actor, limit=200, offset=0)
    if page_user.actor.is_system or page_user.actor.can(Permission.sites_manage):
        rows = [s for s in rows if page_user.actor.in_site(s.id)]
    return rows


def all_sites(session: Session, page_user: PageUser) -> list[Site]:
    """Every site the user may read (an admin's: all of them), for the admin forms' choices."""
    rows, _ = sites.list_sites(session=session, actor=page_user.actor, limit=200, offset=0)
    return rows


def parse_site_ids(values: list[str] | None) -> list[uuid.UUID]:
    """The sites ticked on a form (`site_ids`), refused as a field when one is not an id."""
    out: list[uuid.UUID] = []
    for value in values or []:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            raise InvalidInput(
                "site_ids", "not a site id: choose the sites from the list"
            ) from None
    return out


def chosen_site(site_list: list[Site], site_id: str) -> uuid.UUID | None:
    """The site a page's `?site_id=` names, or the user's only one; None while they have
    several and chose none."""
    if site_id:
        try:
            return uuid.UUID(site_id)
        except ValueError:
            raise NotFound("site") from None
    return site_list[0].id if len(site_list) == 1 else None


def split(value: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in value.replace("\r", "").split(sep) if part.strip()]


def consent_rows(page_user: PageUser, rows: list[Consent]) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "consent": c,
            "scopes": [t(page_user, SCOPE_LABELS.get(s, s)) for s in c.scopes],
            "given_by": t(page_user, GIVEN_BY_LABELS[c.given_by_kind.value]),
            "method": t(page_user, METHOD_LABELS[c.method.value]),
            "overdue": c.withdrawn_at is None and c.review_due <= now,
        }
        for c in rows
    ]
