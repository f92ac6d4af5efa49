"""Console pages that change a resident's record: the details form and the photo."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import error_summary, refused_fields, split
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.console.residents import resident_page
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import NUL_TEXT, TOO_LONG
from api.pages.i18n import N_, gettext
from api.pages.rendering import see_other
from welfare.authz import Permission
from welfare.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMedia,
)
from welfare.residents import service as residents
from welfare.residents.models import Resident, ResidentUpdate

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

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


# What the details form may hold: the longer texts up to 4,000 characters, the rest 2,000.
DETAIL_LIMITS = {"care_needs": 4000, "medical_notes": 4000, "approach": 4000, "routines": 4000}


def _typed_details(form: FormData) -> dict[str, str]:
    """The details form's values as typed (a file sent for a field reads as empty)."""
    typed: dict[str, str] = {}
    for name in (*TEXT_FIELDS, "aliases", "languages", "places", "birth_year", "height_cm"):
        value = form.get(name, "")
        typed[name] = value if isinstance(value, str) else ""
    for name in ("sex", "risk_level"):
        value = form.get(name, "")
        typed[name] = value[:20] if isinstance(value, str) else ""
    return typed


def _details_problems(language: str, typed: dict[str, str]) -> dict[str, str]:
    """The fields refused before the model sees them: a NUL character, or too long."""
    errors: dict[str, str] = {}
    for name, value in typed.items():
        if "\x00" in value:
            errors[name] = gettext(language, NUL_TEXT)
        elif len(value) > DETAIL_LIMITS.get(name, 2000):
            limit = DETAIL_LIMITS.get(name, 2000)
            errors[name] = gettext(language, TOO_LONG) % {"limit": limit}
    return errors


def _details_update(typed: dict[str, str]) -> ResidentUpdate:
    """The change the details form asks for (raises InvalidInput for a number that is not)."""
    changes: dict[str, Any] = {name: typed[name].strip() or None for name in TEXT_FIELDS}
    changes.update(
        {
            "aliases": split(typed["aliases"]),
            "languages": split(typed["languages"]),
            "places": split(typed["places"], "\n"),
            "birth_year": _number("birth_year", typed["birth_year"]),
            "height_cm": _number("height_cm", typed["height_cm"]),
            "sex": typed["sex"] or "unknown",
            "risk_level": typed["risk_level"] or "medium",
        }
    )
    return ResidentUpdate(**changes)


@router.post("/residents/{resident_id}/edit")
async def resident_update(
    request: Request,
    resident_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
) -> Response:
    form = await request.form()
    check_form_csrf(page_user, str(form.get("csrf_token") or ""))
    typed = _typed_details(form)
    errors = _details_problems(page_user.language, typed)

    def redraw(**messages: Any) -> Response:
        resident = residents.load_resident(
            session, page_user.actor, resident_id, Permission.registry_write
        )
        return _edit_page(request, page_user, resident, form=typed, **messages)

    if errors:
        return redraw(errors=errors, error=error_summary(page_user, errors), status_code=422)
    try:
        residents.update_resident(
            session=session,
            actor=page_user.actor,
            resident_id=resident_id,
            data=_details_update(typed),
        )
    except (ValidationError, InvalidInput) as exc:
        raise refused_fields(page_user, exc, redraw) from exc
    except Conflict as exc:
        errors = {
            "full_name": gettext(
                page_user.language,
                "Someone with this name is already registered at this household.",
            )
        }
        error = error_summary(page_user, errors)
        raise FormError(redraw, errors=errors, error=error, status_code=409) from exc
    return see_other(f"/console/residents/{resident_id}?done=details")


# --- the photo -----------------------------------------------------------------------------------


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
