"""Console pages of the residents: the list, registering one, and a resident's page (which the
contact, consent, tag and photo forms on it draw again when a value is refused)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import (
    CONSENT_STATE_LABELS,
    CONTACT_LANGUAGES,
    GIVEN_BY_LABELS,
    METHOD_LABELS,
    PAGE_SIZE,
    SCOPE_LABELS,
    Text200,
    Text2000,
    consent_rows,
    contact_language_for,
    refused_fields,
    split,
    visible_sites,
)
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render, new_request_id
from api.pages.deps import PageUser, check_form_csrf, t
from api.pages.form_errors import FormError, PageRoute
from api.pages.i18n import gettext
from api.pages.rendering import see_other
from welfare import consents
from welfare.authz import Permission
from welfare.consent.models import ConsentMethod, ConsentScope, GivenByKind
from welfare.consent.scopes import live_scopes
from welfare.errors import Conflict, InvalidInput, PermissionDenied
from welfare.phones import display_phone
from welfare.residents import service as residents
from welfare.residents.models import ResidentCreate
from welfare.settings import Settings
from welfare.sites import service as sites
from welfare.sites.models import HouseholdCreate
from welfare.tags import service as tags
from welfare.tags.sheet import label_reference, qr_svg_data_uri

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

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
            "sites": visible_sites(session, page_user),
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


def _typed_site(page_user: PageUser, session: Session, site_id: str) -> uuid.UUID:
    """The site a typed building and unit belong to: the one chosen, or the user's only one."""
    if site_id:
        try:
            return uuid.UUID(site_id)
        except ValueError:
            raise InvalidInput("site_id", "not a site id: choose the sites from the list") from None
    visible = visible_sites(session, page_user)
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


def _resident_data(typed: dict[str, str], household_id: str) -> ResidentCreate:
    """The new resident as typed on the form, in the household chosen or typed."""
    return ResidentCreate(
        household_id=household_id or None,  # type: ignore[arg-type]
        full_name=typed["full_name"].strip(),
        preferred_name=typed["preferred_name"].strip() or None,
        languages=split(typed["languages"]),
        approach=typed["approach"].strip() or None,
        care_needs=typed["care_needs"].strip() or None,
        medical_notes=typed["medical_notes"].strip() or None,
        places=split(typed["places"], "\n"),
    )


def _offer_household(redraw: Callable[..., Response], page_user: PageUser, label: str) -> Response:
    """The form again, offering to create the household typed (nothing is created yet)."""
    return redraw(
        offer_household=label,
        error=gettext(
            page_user.language,
            "There is no household %(unit)s at this site yet. Create it and add "
            "the resident, or choose an existing household.",
        )
        % {"unit": label},
        status_code=422,
    )


def _duplicate(page_user: PageUser, redraw: Callable[..., Response], exc: Conflict) -> FormError:
    """The form again, linking the resident already registered under this name."""
    return FormError(
        redraw,
        error=gettext(
            page_user.language,
            "Someone with this name is already registered at this household. Open their "
            "record, or register anyway if it is a different person.",
        ),
        duplicate_id=str(exc.extra.get("existing_id", "")),
        status_code=409,
    )


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
    redraw = partial(_new_resident_page, request, session, page_user, form=typed)
    try:
        if not household_id and (building.strip() or unit.strip()):
            # Created only when the person clicked to create exactly this one.
            household = _typed_household(
                session, page_user, site_id, building, unit, create=create_household == label
            )
            if household is None:  # not a household yet: offer to create it, create nothing
                return _offer_household(redraw, page_user, label)
            household_id = str(household.id)
        resident = residents.create_resident(
            session=session,
            actor=page_user.actor,
            data=_resident_data(typed, household_id),
            allow_duplicate=allow_duplicate,
        )
    except (ValidationError, InvalidInput) as exc:
        raise refused_fields(page_user, exc, redraw) from exc
    except Conflict as exc:
        raise _duplicate(page_user, redraw, exc) from exc
    return see_other(f"/console/residents/{resident.id}?done=created")


# --- one resident -------------------------------------------------------------------------------


def _resident_context(
    session: Session, settings: Settings, page_user: PageUser, resident_id: uuid.UUID
) -> dict[str, Any]:
    resident = residents.get_resident(
        session=session, actor=page_user.actor, resident_id=resident_id
    )
    site = sites.get_site(session=session, actor=page_user.actor, site_id=resident.site_id)
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
        "consents": consent_rows(page_user, consent_list),
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
