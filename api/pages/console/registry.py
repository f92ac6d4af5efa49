"""Registry pages of the staff console: residents, photos, contacts, consents, tags, households
and the printable label sheet. Every read and write goes through welfare/* services."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep
from api.pages.console.frame import (
    ConsoleUserDep,
    CsrfField,
    action_error,
    console_render,
    new_request_id,
)
from api.pages.deps import PageUser, check_form_csrf, t
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import NUL_TEXT, TOO_LONG, page_value_problem, phone_error
from api.pages.i18n import N_, gettext
from api.pages.rendering import see_other
from welfare import consents, contact_checks
from welfare.authz import Permission
from welfare.channels import CONTACT_CHANNELS, ChannelKind
from welfare.consent.models import (
    Consent,
    ConsentCreate,
    ConsentMethod,
    ConsentScope,
    GivenByKind,
)
from welfare.consent.scopes import consents_of, live_scopes
from welfare.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMedia,
)
from welfare.incidents.models import CLOSED, Incident
from welfare.phones import InvalidPhone, display_phone
from welfare.residents import service as residents
from welfare.residents.models import (
    Contact,
    ContactCreate,
    ContactUpdate,
    Resident,
    ResidentCreate,
    ResidentUpdate,
)
from welfare.settings import Settings
from welfare.sites import service as sites
from welfare.sites.models import HouseholdCreate, Site
from welfare.tags import service as tags
from welfare.tags.sheet import label_reference, label_sheet, qr_svg_data_uri
from welfare.times import parse_day

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

PAGE_SIZE = 50
Text200 = Annotated[str, Form(max_length=200)]
Text2000 = Annotated[str, Form(max_length=2000)]

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


def _field_errors(page_user: PageUser, exc: Exception) -> dict[str, str]:
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


def _error_summary(page_user: PageUser, errors: dict[str, str]) -> str:
    names = [
        t(page_user, FIELD_LABELS[f]) if f in FIELD_LABELS else f for f in errors if f != "form"
    ]
    if not names:
        return errors.get("form") or gettext(page_user.language, "Please check what you entered.")
    return gettext(page_user.language, "Please check: %(fields)s") % {
        "fields": ", ".join(dict.fromkeys(names))
    }


def _refused_fields(
    page_user: PageUser, exc: Exception, redraw: Callable[..., Response]
) -> FormError:
    """The form again, each refused field with what to give instead and a summary naming them."""
    errors = _field_errors(page_user, exc)
    return FormError(redraw, errors=errors, error=_error_summary(page_user, errors))


def _erased(page_user: PageUser, redraw: Callable[..., Response]) -> FormError:
    """The resident's page again: the record was erased (consent withdrawn) meanwhile."""
    error = gettext(page_user.language, "This record was erased after consent was withdrawn.")
    return FormError(redraw, error=error, status_code=409)


def _visible_sites(session: Session, page_user: PageUser) -> list[Site]:
    rows, _ = sites.list_sites(session=session, actor=page_user.actor, limit=200, offset=0)
    if page_user.actor.is_system or page_user.actor.can(Permission.sites_manage):
        rows = [s for s in rows if page_user.actor.in_site(s.id)]
    return rows


# --- residents list -----------------------------------------------------------------------------


@router.get("/residents")
def residents_list(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    q: Annotated[str, Query(max_length=200)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    rows, total = residents.list_residents(
        session=session, actor=page_user.actor, limit=PAGE_SIZE, offset=offset, q=q or None
    )
    items = [
        {
            "resident": r,
            "unit": residents.unit_label(session, r),
            "state": consents.state_of(session, r).value,
        }
        for r in rows
    ]
    return console_render(
        request,
        page_user,
        "console/residents.html",
        {
            "items": items,
            "total": total,
            "q": q,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "state_labels": CONSENT_STATE_LABELS,
        },
        section="/console/residents",
    )


# --- register a resident ------------------------------------------------------------------------


def _households_for_form(session: Session, page_user: PageUser) -> list[Any]:
    rows, _ = sites.list_households(session=session, actor=page_user.actor, limit=200, offset=0)
    return rows


def _new_resident_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    duplicate_id: str | None = None,
    offer_household: str | None = None,
    status_code: int = 200,
) -> Response:
    return console_render(
        request,
        page_user,
        "console/resident_new.html",
        {
            "households": _households_for_form(session, page_user),
            "sites": _visible_sites(session, page_user),
            "offer_household": offer_household,
            "form": form or {},
            "errors": errors or {},
            "error": error,
            "duplicate_id": duplicate_id,
        },
        status_code=status_code,
        section="/console/residents",
    )


@router.get("/residents/new")
def resident_new(request: Request, session: SessionDep, page_user: ConsoleUserDep) -> Response:
    if not page_user.actor.can(Permission.registry_write):
        raise PermissionDenied("the role may not register residents")
    return _new_resident_page(request, session, page_user)


def _chosen_site(site_list: list[Site], site_id: str) -> uuid.UUID | None:
    """The site a page's `?site_id=` names, or the user's only one; None while they have
    several and chose none."""
    if site_id:
        try:
            return uuid.UUID(site_id)
        except ValueError:
            raise NotFound("site") from None
    return site_list[0].id if len(site_list) == 1 else None


def _typed_site(page_user: PageUser, session: Session, site_id: str) -> uuid.UUID:
    """The site a typed building and unit belong to: the one chosen, or the user's only one."""
    if site_id:
        try:
            return uuid.UUID(site_id)
        except ValueError:
            raise InvalidInput("site_id", "not a site id: choose the sites from the list") from None
    visible = _visible_sites(session, page_user)
    if len(visible) == 1:
        return visible[0].id
    raise InvalidInput("site_id", "choose the site of the building and unit")


def _typed_household(
    session: Session, page_user: PageUser, site_id: str, building: str, unit: str, *, create: bool
) -> Any:
    """The household a person typed as building and unit: the existing one, or (when they
    clicked to create it) a new one, written and audited by the sites service. None when it
    does not exist and creating it was not asked for."""
    if not building.strip():
        raise InvalidInput("building", "type the building, e.g. 1 or Block A")
    if not unit.strip():
        raise InvalidInput("unit", "type the unit, e.g. 1609")
    site = _typed_site(page_user, session, site_id)
    found = sites.find_household(
        session=session, actor=page_user.actor, site_id=site, building=building, unit=unit
    )
    if found is not None or not create:
        return found
    return sites.create_household(
        session=session,
        actor=page_user.actor,
        data=HouseholdCreate(site_id=site, building=building, unit=unit),
    )


def _split(value: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in value.replace("\r", "").split(sep) if part.strip()]


@router.post("/residents")
def resident_create(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    household_id: Annotated[str, Form(max_length=40)] = "",
    full_name: Text200 = "",
    preferred_name: Text200 = "",
    languages: Text200 = "",
    approach: Text2000 = "",
    care_needs: Text2000 = "",
    medical_notes: Text2000 = "",
    places: Text2000 = "",
    site_id: Annotated[str, Form(max_length=40)] = "",
    building: Annotated[str, Form(max_length=50)] = "",
    unit: Annotated[str, Form(max_length=50)] = "",
    create_household: Annotated[str, Form(max_length=110)] = "",
    allow_duplicate: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = {
        "household_id": household_id,
        "full_name": full_name,
        "preferred_name": preferred_name,
        "languages": languages,
        "approach": approach,
        "care_needs": care_needs,
        "medical_notes": medical_notes,
        "places": places,
        "site_id": site_id,
        "building": building,
        "unit": unit,
        "create_household": create_household,
    }
    label = f"{building.strip()}-{unit.strip()}"
    try:
        if not household_id and (building.strip() or unit.strip()):
            # Created only when the person clicked to create exactly this one.
            household = _typed_household(
                session, page_user, site_id, building, unit, create=create_household == label
            )
            if household is None:  # not a household yet: offer to create it, create nothing
                return _new_resident_page(
                    request,
                    session,
                    page_user,
                    form=typed,
                    offer_household=label,
                    error=gettext(
                        page_user.language,
                        "There is no household %(unit)s at this site yet. Create it and add "
                        "the resident, or choose an existing household.",
                    )
                    % {"unit": label},
                    status_code=422,
                )
            household_id = str(household.id)
        data = ResidentCreate(
            household_id=household_id or None,  # type: ignore[arg-type]
            full_name=full_name.strip(),
            preferred_name=preferred_name.strip() or None,
            languages=_split(languages),
            approach=approach.strip() or None,
            care_needs=care_needs.strip() or None,
            medical_notes=medical_notes.strip() or None,
            places=_split(places, "\n"),
        )
        resident = residents.create_resident(
            session=session, actor=page_user.actor, data=data, allow_duplicate=allow_duplicate
        )
    except (ValidationError, InvalidInput) as exc:
        redraw = partial(_new_resident_page, request, session, page_user, form=typed)
        raise _refused_fields(page_user, exc, redraw) from exc
    except Conflict as exc:
        raise FormError(
            partial(_new_resident_page, request, session, page_user, form=typed),
            error=gettext(
                page_user.language,
                "Someone with this name is already registered at this household. Open their "
                "record, or register anyway if it is a different person.",
            ),
            duplicate_id=str(exc.extra.get("existing_id", "")),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident.id}?done=created")


# --- one resident -------------------------------------------------------------------------------


def _consent_rows(page_user: PageUser, rows: list[Consent]) -> list[dict[str, Any]]:
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


def _resident_context(
    session: Session, settings: Settings, page_user: PageUser, resident_id: uuid.UUID
) -> dict[str, Any]:
    resident = residents.get_resident(
        session=session, actor=page_user.actor, resident_id=resident_id
    )
    site = session.get(Site, resident.site_id)
    erased = resident.erased_at is not None
    consent_list = consents.list_consents(
        session=session, actor=page_user.actor, resident_id=resident.id
    )
    contacts = (
        []
        if erased
        else residents.list_contacts(
            session=session, actor=page_user.actor, resident_id=resident.id
        )
    )
    tag = tags.live_tag(session, resident.id)
    scopes = live_scopes(consent_list)
    return {
        "resident": resident,
        "site": site,
        "erased": erased,
        "unit": residents.unit_label(session, resident),
        "state": consents.state_of(session, resident).value,
        "state_labels": CONSENT_STATE_LABELS,
        "consents": _consent_rows(page_user, consent_list),
        "contacts": contacts,
        "tag": tag,
        "tag_url": tags.tag_url(settings.public_base_url, tag.code) if tag else None,
        "tag_reference": label_reference(tag.code) if tag else None,
        # Drawn in the page, not fetched as the label: only downloading or printing the label
        # counts as printing it (the audit's "tag.label").
        "tag_qr": qr_svg_data_uri(tags.tag_url(settings.public_base_url, tag.code))
        if tag
        else None,
        "can_write": page_user.actor.can(Permission.registry_write),
        "can_photo": ConsentScope.photo in scopes,
        "can_tag": ConsentScope.lost_person_response in scopes,
        "scope_choices": [(s.value, t(page_user, SCOPE_LABELS[s.value])) for s in ConsentScope],
        "given_by_choices": [
            (k.value, t(page_user, GIVEN_BY_LABELS[k.value])) for k in GivenByKind
        ],
        "method_choices": [(m.value, t(page_user, METHOD_LABELS[m.value])) for m in ConsentMethod],
        "contact_languages": CONTACT_LANGUAGES,
        "new_contact": {"language": contact_language_for(resident)},
        "show_phone": display_phone,
        "timezone": site.timezone if site else None,
        "request_id": new_request_id(),
    }


def resident_page(
    request: Request,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    resident_id: uuid.UUID,
    *,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    form_name: str = "",
    status_code: int = 200,
) -> Response:
    context = _resident_context(session, settings, page_user, resident_id)
    context.update(
        {"error": error, "errors": errors or {}, "form": form or {}, "form_name": form_name}
    )
    return console_render(
        request,
        page_user,
        "console/resident.html",
        context,
        status_code=status_code,
        section="/console/residents",
    )


@router.get("/residents/{resident_id}")
def resident_view(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
) -> Response:
    return resident_page(request, session, settings, page_user, resident_id)


# photo


@router.post("/residents/{resident_id}/photo")
async def resident_photo(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    photo: Annotated[UploadFile | None, File()] = None,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    data = await photo.read(settings.max_photo_bytes + 1) if photo is not None else b""
    redraw = partial(resident_page, request, session, settings, page_user, resident_id)
    try:
        if not data:
            raise InvalidInput("photo", "empty")
        residents.set_photo(
            session=session,
            actor=page_user.actor,
            settings=settings,
            resident_id=resident_id,
            data=data,
        )
    except PayloadTooLarge as exc:
        error = gettext(page_user.language, "That photo is too large.")
        raise FormError(redraw, error=error, status_code=413) from exc
    except UnsupportedMedia as exc:
        error = gettext(page_user.language, "Use a JPEG, PNG or WebP photo.")
        raise FormError(redraw, error=error, status_code=415) from exc
    except InvalidInput as exc:
        error = gettext(page_user.language, "Choose a photo to upload.")
        raise FormError(redraw, error=error) from exc
    except Conflict as exc:
        error = gettext(
            page_user.language, "Record a consent that covers the photo before storing one."
        )
        raise FormError(redraw, error=error, status_code=409) from exc
    return see_other(f"/console/residents/{resident_id}?done=photo")


@router.post("/residents/{resident_id}/photo/delete")
def resident_photo_delete(
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    residents.delete_photo(
        session=session, actor=page_user.actor, settings=settings, resident_id=resident_id
    )
    return see_other(f"/console/residents/{resident_id}?done=photo_removed")


# contacts


def _contact_form_values(
    name: str,
    relationship: str,
    phone: str,
    secondary_phone: str,
    language: str,
    sms: bool,
    voice: bool,
    whatsapp: bool,
    lives_in_household: bool,
    can_collect: bool,
    consent_to_contact: bool,
    quiet_start: str,
    quiet_end: str,
    priority: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "relationship": relationship,
        "phone": phone,
        "secondary_phone": secondary_phone,
        "language": language,
        "sms": sms,
        "voice": voice,
        "whatsapp": whatsapp,
        "lives_in_household": lives_in_household,
        "can_collect": can_collect,
        "consent_to_contact": consent_to_contact,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "priority": priority,
    }


def _contact_data(values: dict[str, Any]) -> dict[str, Any]:
    channels = [kind.value for kind in CONTACT_CHANNELS if values.get(kind.value)]
    return {
        "name": values["name"].strip(),
        "relationship": values["relationship"].strip(),
        "phone": values["phone"].strip(),
        "secondary_phone": values["secondary_phone"].strip() or None,
        "language": values["language"],
        "channels": channels,
        "lives_in_household": values["lives_in_household"],
        "can_collect": values["can_collect"],
        "consent_to_contact": values["consent_to_contact"],
        "quiet_hours_start": values["quiet_start"] or None,
        "quiet_hours_end": values["quiet_end"] or None,
        "priority": int(values["priority"]) if values["priority"].isdigit() else None,
    }


@router.post("/residents/{resident_id}/contacts")
def contact_create(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    name: Text200 = "",
    relationship: Annotated[str, Form(max_length=100)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    secondary_phone: Annotated[str, Form(max_length=40)] = "",
    language: Annotated[str, Form(max_length=35)] = "en",
    sms: Annotated[bool, Form()] = False,
    voice: Annotated[bool, Form()] = False,
    whatsapp: Annotated[bool, Form()] = False,
    lives_in_household: Annotated[bool, Form()] = False,
    can_collect: Annotated[bool, Form()] = False,
    consent_to_contact: Annotated[bool, Form()] = False,
    quiet_start: Annotated[str, Form(max_length=8)] = "",
    quiet_end: Annotated[str, Form(max_length=8)] = "",
    priority: Annotated[str, Form(max_length=3)] = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    values = _contact_form_values(
        name,
        relationship,
        phone,
        secondary_phone,
        language,
        sms,
        voice,
        whatsapp,
        lives_in_household,
        can_collect,
        consent_to_contact,
        quiet_start,
        quiet_end,
        priority,
    )
    redraw = partial(resident_page, request, session, settings, page_user, resident_id)
    try:
        residents.create_contact(
            session=session,
            actor=page_user.actor,
            resident_id=resident_id,
            data=ContactCreate(**_contact_data(values)),
        )
    except (ValidationError, InvalidInput) as exc:
        with_form = partial(redraw, form=values, form_name="contact")
        raise _refused_fields(page_user, exc, with_form) from exc
    except Conflict as exc:
        raise _erased(page_user, redraw) from exc
    return see_other(f"/console/residents/{resident_id}?done=contact#contacts")


def _contact_edit_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    resident_id: uuid.UUID,
    contact: Contact,
    *,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return console_render(
        request,
        page_user,
        "console/contact_edit.html",
        {
            "resident_id": resident_id,
            "contact": contact,
            "form": form,
            "errors": errors or {},
            "error": error,
            "contact_languages": CONTACT_LANGUAGES,
        },
        status_code=status_code,
        section="/console/residents",
    )


def _contact_values(contact: Contact) -> dict[str, Any]:
    return _contact_form_values(
        contact.name,
        contact.relationship,
        contact.phone,
        contact.secondary_phone or "",
        contact.language,
        "sms" in contact.channels,
        "voice" in contact.channels,
        "whatsapp" in contact.channels,
        contact.lives_in_household,
        contact.can_collect,
        contact.consent_to_contact,
        contact.quiet_hours_start.strftime("%H:%M") if contact.quiet_hours_start else "",
        contact.quiet_hours_end.strftime("%H:%M") if contact.quiet_hours_end else "",
        str(contact.priority),
    )


@router.get("/residents/{resident_id}/contacts/{contact_id}")
def contact_edit(
    request: Request,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
) -> Response:
    contact = residents.get_contact(
        session=session, actor=page_user.actor, resident_id=resident_id, contact_id=contact_id
    )
    return _contact_edit_page(
        request, session, page_user, resident_id, contact, form=_contact_values(contact)
    )


@router.post("/residents/{resident_id}/contacts/{contact_id}")
def contact_update(
    request: Request,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    name: Text200 = "",
    relationship: Annotated[str, Form(max_length=100)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    secondary_phone: Annotated[str, Form(max_length=40)] = "",
    language: Annotated[str, Form(max_length=35)] = "en",
    sms: Annotated[bool, Form()] = False,
    voice: Annotated[bool, Form()] = False,
    whatsapp: Annotated[bool, Form()] = False,
    lives_in_household: Annotated[bool, Form()] = False,
    can_collect: Annotated[bool, Form()] = False,
    consent_to_contact: Annotated[bool, Form()] = False,
    quiet_start: Annotated[str, Form(max_length=8)] = "",
    quiet_end: Annotated[str, Form(max_length=8)] = "",
    priority: Annotated[str, Form(max_length=3)] = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    values = _contact_form_values(
        name,
        relationship,
        phone,
        secondary_phone,
        language,
        sms,
        voice,
        whatsapp,
        lives_in_household,
        can_collect,
        consent_to_contact,
        quiet_start,
        quiet_end,
        priority,
    )
    try:
        residents.update_contact(
            session=session,
            actor=page_user.actor,
            resident_id=resident_id,
            contact_id=contact_id,
            data=ContactUpdate(**_contact_data(values)),
        )
    except (ValidationError, InvalidInput) as exc:

        def redraw(**messages: Any) -> Response:
            # Read (and audited) after the rollback, as the page's own GET reads it.
            contact = residents.get_contact(
                session=session,
                actor=page_user.actor,
                resident_id=resident_id,
                contact_id=contact_id,
            )
            return _contact_edit_page(
                request, session, page_user, resident_id, contact, form=values, **messages
            )

        raise _refused_fields(page_user, exc, redraw) from exc
    return see_other(f"/console/residents/{resident_id}?done=contact#contacts")


@router.post("/residents/{resident_id}/contacts/{contact_id}/delete")
def contact_delete(
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    residents.delete_contact(
        session=session, actor=page_user.actor, resident_id=resident_id, contact_id=contact_id
    )
    return see_other(f"/console/residents/{resident_id}?done=contact_removed#contacts")


@router.post("/residents/{resident_id}/contacts/{contact_id}/test")
def contact_test(
    request: Request,
    resident_id: uuid.UUID,
    contact_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    channel: Annotated[ChannelKind, Form()],
    request_id: Annotated[str, Form(min_length=8, max_length=64, pattern=r"^[\w-]+$")],
    csrf_token: CsrfField = None,
) -> Response:
    """Send the contact a test SMS (with its link) or a test call (press 1)."""
    check_form_csrf(page_user, csrf_token)
    try:
        contact_checks.send_contact_test(
            session, page_user.actor, contact_id, channel, request_id, resident_id=resident_id
        )
    except (Conflict, InvalidInput) as exc:
        error, status = action_error(page_user.language, exc)
        redraw = partial(resident_page, request, session, settings, page_user, resident_id)
        raise FormError(redraw, error=error, status_code=status) from exc
    done = "test_sms" if channel is ChannelKind.sms else "test_call"
    return see_other(f"/console/residents/{resident_id}?done={done}#contacts")


@router.get("/contacts/unverified")
def contacts_unverified(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    site_id: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The site's family contacts never verified, or not in the last 12 months."""
    site_list = _visible_sites(session, page_user)
    chosen = _chosen_site(site_list, site_id)
    site = session.get(Site, chosen) if chosen else None
    rows = contact_checks.list_unverified(session, page_user.actor, chosen) if chosen else []
    return console_render(
        request,
        page_user,
        "console/contacts_unverified.html",
        {
            "sites": site_list,
            "site": site,
            "rows": rows,
            "timezone": site.timezone if site else None,
        },
        section="/console/contacts/unverified",
    )


# consents


@router.post("/residents/{resident_id}/consents")
def consent_record(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    given_by_kind: Annotated[str, Form(max_length=20)] = "",
    given_by_name: Text200 = "",
    given_by_relationship: Annotated[str, Form(max_length=100)] = "",
    evidence: Annotated[str, Form(max_length=1000)] = "",
    method: Annotated[str, Form(max_length=20)] = "",
    scopes: Annotated[list[str] | None, Form(max_length=len(ConsentScope))] = None,
    given_on: Annotated[str, Form(max_length=10)] = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = {
        "given_by_kind": given_by_kind,
        "given_by_name": given_by_name,
        "given_by_relationship": given_by_relationship,
        "evidence": evidence,
        "method": method,
        "scopes": scopes or [],
        "given_on": given_on,
    }
    redraw = partial(resident_page, request, session, settings, page_user, resident_id)
    try:
        given_at = None
        if given_on:
            try:
                day = parse_day(given_on)
            except ValueError as exc:
                raise InvalidInput("given_at", str(exc)) from None
            given_at = dt.datetime.combine(day, dt.time(12), dt.UTC)
        data = ConsentCreate(
            given_by_kind=given_by_kind,  # type: ignore[arg-type]
            given_by_name=given_by_name.strip(),
            given_by_relationship=given_by_relationship.strip() or None,
            evidence=evidence.strip() or None,
            method=method,  # type: ignore[arg-type]
            scopes=scopes or [],  # type: ignore[arg-type]
            given_at=given_at,
        )
        consents.record_consent(
            session=session, actor=page_user.actor, resident_id=resident_id, data=data
        )
    except (ValidationError, InvalidInput) as exc:
        with_form = partial(redraw, form=typed, form_name="consent")
        raise _refused_fields(page_user, exc, with_form) from exc
    except Conflict as exc:
        raise _erased(page_user, redraw) from exc
    return see_other(f"/console/residents/{resident_id}?done=consent#consents")


def _erasure_plan(
    session: Session, resident: Resident, consent: Consent
) -> tuple[str, list[ConsentScope]]:
    """What withdrawing this consent erases: "record", "photo" or "nothing", and the scopes
    no consent covers any more. The same rule the service applies."""
    others = [c for c in consents_of(session, resident.id) if c.id != consent.id]
    remaining = live_scopes(others)
    lost = sorted(set(live_scopes([consent])) - remaining)
    if ConsentScope.registry not in remaining:
        return "record", lost
    if ConsentScope.photo not in remaining and resident.photo_file:
        return "photo", lost
    if ConsentScope.photo in lost and _incident_photo_count(session, resident):
        return "photo", lost
    return "nothing", lost


def _incident_photo_count(session: Session, resident: Resident) -> int:
    """Photos guards took of the resident on incidents (erased with the photo scope)."""
    return len(
        session.exec(
            select(Incident.id).where(
                Incident.resident_id == resident.id, col(Incident.photo_file).is_not(None)
            )
        ).all()
    )


def _withdraw_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    *,
    error: str | None = None,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    resident = residents.get_resident(
        session=session,
        actor=page_user.actor,
        resident_id=resident_id,
        purpose="consent withdrawal",
    )
    consent_list = consents.list_consents(
        session=session, actor=page_user.actor, resident_id=resident.id
    )
    consent = next((c for c in consent_list if c.id == consent_id), None)
    if consent is None:
        raise NotFound("consent")
    erases, lost = _erasure_plan(session, resident, consent)
    incidents_open = 0
    if erases == "record":
        incidents_open = len(
            session.exec(
                select(Incident.id).where(
                    Incident.resident_id == resident.id, col(Incident.status).not_in(CLOSED)
                )
            ).all()
        )
    return console_render(
        request,
        page_user,
        "console/withdraw.html",
        {
            "resident": resident,
            "consent": _consent_rows(page_user, [consent])[0],
            "erases": erases,
            "lost": [t(page_user, SCOPE_LABELS[s.value]) for s in lost],
            "contacts_count": len(
                residents.list_contacts(
                    session=session, actor=page_user.actor, resident_id=resident.id
                )
            )
            if resident.erased_at is None
            else 0,
            "has_tag": tags.live_tag(session, resident.id) is not None,
            "incidents_open": incidents_open,
            "incident_photos": _incident_photo_count(session, resident),
            "error": error,
            "reason": reason,
        },
        status_code=status_code,
        section="/console/residents",
    )


@router.get("/residents/{resident_id}/consents/{consent_id}/withdraw")
def consent_withdraw_confirm(
    request: Request,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
) -> Response:
    return _withdraw_page(request, session, page_user, resident_id, consent_id)


@router.post("/residents/{resident_id}/consents/{consent_id}/withdraw")
def consent_withdraw(
    request: Request,
    resident_id: uuid.UUID,
    consent_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    reason: Annotated[str, Form(max_length=500)] = "",
    confirm: Annotated[bool, Form()] = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    if not confirm or "\x00" in reason:
        return _withdraw_page(
            request,
            session,
            page_user,
            resident_id,
            consent_id,
            error=gettext(
                page_user.language, "Tick the box to confirm that you have read what is erased."
            ),
            reason=reason.replace("\x00", ""),
            status_code=422,
        )
    try:
        consents.withdraw_consent(
            session=session,
            actor=page_user.actor,
            settings=settings,
            resident_id=resident_id,
            consent_id=consent_id,
            reason=reason.strip() or None,
        )
    except Conflict as exc:
        raise FormError(
            partial(_withdraw_page, request, session, page_user, resident_id, consent_id),
            error=gettext(page_user.language, "This consent is already withdrawn."),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done=withdrawn#consents")


# tags


@router.post("/residents/{resident_id}/tag")
def tag_issue(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        tags.issue_tag(session=session, actor=page_user.actor, resident_id=resident_id)
    except Conflict as exc:
        raise FormError(
            partial(resident_page, request, session, settings, page_user, resident_id),
            error=gettext(page_user.language, "Record a lost-person consent before issuing a tag."),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done=tag#tag")


@router.post("/residents/{resident_id}/tag/revoke")
def tag_revoke(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    try:
        tags.revoke_tag(session=session, actor=page_user.actor, resident_id=resident_id)
    except NotFound as exc:
        raise FormError(
            partial(resident_page, request, session, settings, page_user, resident_id),
            error=gettext(page_user.language, "There is no tag to revoke."),
            status_code=409,
        ) from exc
    return see_other(f"/console/residents/{resident_id}?done=tag_revoked#tag")


# --- households ---------------------------------------------------------------------------------


def _households_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    q: str = "",
    offset: int = 0,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    rows, total = sites.list_households(
        session=session, actor=page_user.actor, limit=PAGE_SIZE, offset=offset, q=q or None
    )
    site_list = _visible_sites(session, page_user)
    names = {s.id: s.name for s in site_list}
    return console_render(
        request,
        page_user,
        "console/households.html",
        {
            "households": rows,
            "total": total,
            "q": q,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "sites": site_list,
            "site_names": names,
            "form": form or {},
            "errors": errors or {},
            "error": error,
            "show_phone": display_phone,
            "can_write": page_user.actor.can(Permission.registry_write),
        },
        status_code=status_code,
        section="/console/households",
    )


@router.get("/households")
def households_list(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    q: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return _households_page(request, session, page_user, q=q, offset=offset)


@router.post("/households")
def household_create(
    request: Request,
    session: SessionDep,
    page_user: ConsoleUserDep,
    site_id: Annotated[str, Form(max_length=40)] = "",
    building: Annotated[str, Form(max_length=50)] = "",
    unit: Annotated[str, Form(max_length=50)] = "",
    landline: Annotated[str, Form(max_length=40)] = "",
    notes: Text2000 = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = {
        "site_id": site_id,
        "building": building,
        "unit": unit,
        "landline": landline,
        "notes": notes,
    }
    try:
        household = sites.create_household(
            session=session,
            actor=page_user.actor,
            data=HouseholdCreate(
                site_id=site_id or None,  # type: ignore[arg-type]
                building=building,
                unit=unit,
                landline=landline.strip() or None,
                notes=notes.strip() or None,
            ),
        )
    except (ValidationError, InvalidInput) as exc:
        redraw = partial(_households_page, request, session, page_user, form=typed)
        raise _refused_fields(page_user, exc, redraw) from exc
    except Conflict as exc:
        taken = gettext(page_user.language, "This building and unit already exist at the site.")
        raise FormError(
            partial(_households_page, request, session, page_user, form=typed),
            errors={"unit": taken},
            error=taken,
            status_code=409,
        ) from exc
    return see_other(f"/console/households?q={quote(household.unit_label)}&done=created")


# --- the label sheet ----------------------------------------------------------------------------


@router.get("/labels")
def labels_sheet(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    site_id: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    site_list = _visible_sites(session, page_user)
    chosen = _chosen_site(site_list, site_id)
    site: Site | None = None
    labels: list[Any] = []
    if chosen is not None:
        site, labels = label_sheet(
            session=session,
            actor=page_user.actor,
            site_id=chosen,
            base_url=settings.public_base_url,
        )
    return console_render(
        request,
        page_user,
        "console/labels.html",
        {
            "sites": site_list,
            "site": site,
            "labels": labels,
            "office_phone": display_phone(site.office_phone)
            if site and site.office_phone
            else None,
        },
        section="/console/labels",
    )


# --- edit a resident's details ------------------------------------------------------------------

TEXT_FIELDS = (
    "full_name",
    "preferred_name",
    "build",
    "hair",
    "eyes",
    "distinguishing_marks",
    "clothing",
    "walking_aid",
    "care_needs",
    "medical_notes",
    "approach",
    "routines",
    "public_care_tips",
)
SEX_LABELS = {
    "female": N_("Female"),
    "male": N_("Male"),
    "other": N_("Other"),
    "unknown": N_("Not recorded"),
}
RISK_LABELS = {"low": N_("Low"), "medium": N_("Medium"), "high": N_("High")}


def _details_values(resident: Resident) -> dict[str, str]:
    values = {name: getattr(resident, name) or "" for name in TEXT_FIELDS}
    values.update(
        {
            "aliases": ", ".join(resident.aliases),
            "languages": ", ".join(resident.languages),
            "places": "\n".join(resident.places),
            "birth_year": str(resident.birth_year or ""),
            "height_cm": str(resident.height_cm or ""),
            "sex": resident.sex.value,
            "risk_level": resident.risk_level.value,
        }
    )
    return values


def _edit_page(
    request: Request,
    page_user: PageUser,
    resident: Resident,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    language = page_user.language
    return console_render(
        request,
        page_user,
        "console/resident_edit.html",
        {
            "resident": resident,
            "form": form,
            "errors": errors or {},
            "error": error,
            "sexes": [(k, gettext(language, v)) for k, v in SEX_LABELS.items()],
            "risks": [(k, gettext(language, v)) for k, v in RISK_LABELS.items()],
        },
        status_code=status_code,
        section="/console/residents",
    )


@router.get("/residents/{resident_id}/edit")
def resident_edit(
    request: Request, resident_id: uuid.UUID, session: SessionDep, page_user: ConsoleUserDep
) -> Response:
    if not page_user.actor.can(Permission.registry_write):
        raise PermissionDenied("the role may not change the registry")
    resident = residents.get_resident(
        session=session, actor=page_user.actor, resident_id=resident_id
    )
    if resident.erased_at is not None:
        raise NotFound("resident")
    return _edit_page(request, page_user, resident, form=_details_values(resident))


def _number(field: str, value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdecimal():
        raise InvalidInput(field, "not a whole number")
    return int(value)


@router.post("/residents/{resident_id}/edit")
async def resident_update(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
) -> Response:
    form = await request.form()
    check_form_csrf(page_user, str(form.get("csrf_token") or ""))
    limits = {"care_needs": 4000, "medical_notes": 4000, "approach": 4000, "routines": 4000}
    typed: dict[str, str] = {}
    for name in (*TEXT_FIELDS, "aliases", "languages", "places", "birth_year", "height_cm"):
        value = form.get(name, "")
        typed[name] = value if isinstance(value, str) else ""
    for name in ("sex", "risk_level"):
        value = form.get(name, "")
        typed[name] = value[:20] if isinstance(value, str) else ""
    errors: dict[str, str] = {}
    for name, value in typed.items():
        if "\x00" in value:
            errors[name] = gettext(page_user.language, NUL_TEXT)
        elif len(value) > limits.get(name, 2000):
            limit = limits.get(name, 2000)
            errors[name] = gettext(page_user.language, TOO_LONG) % {"limit": limit}

    def redraw(**messages: Any) -> Response:
        resident = residents.load_resident(
            session, page_user.actor, resident_id, Permission.registry_write
        )
        return _edit_page(request, page_user, resident, form=typed, **messages)

    if errors:
        return redraw(errors=errors, error=_error_summary(page_user, errors), status_code=422)
    try:
        changes: dict[str, Any] = {name: typed[name].strip() or None for name in TEXT_FIELDS}
        changes.update(
            {
                "aliases": _split(typed["aliases"]),
                "languages": _split(typed["languages"]),
                "places": _split(typed["places"], "\n"),
                "birth_year": _number("birth_year", typed["birth_year"]),
                "height_cm": _number("height_cm", typed["height_cm"]),
                "sex": typed["sex"] or "unknown",
                "risk_level": typed["risk_level"] or "medium",
            }
        )
        residents.update_resident(
            session=session,
            actor=page_user.actor,
            resident_id=resident_id,
            data=ResidentUpdate(**changes),
        )
    except (ValidationError, InvalidInput) as exc:
        raise _refused_fields(page_user, exc, redraw) from exc
    except Conflict as exc:
        errors = {
            "full_name": gettext(
                page_user.language,
                "Someone with this name is already registered at this household.",
            )
        }
        error = _error_summary(page_user, errors)
        raise FormError(redraw, errors=errors, error=error, status_code=409) from exc
    return see_other(f"/console/residents/{resident_id}?done=details")
