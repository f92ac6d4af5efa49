"""Console pages for admins: company identity providers (OpenID Connect sign-in)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep, SettingsDep
from api.pages.console.fields import all_sites, parse_site_ids
from api.pages.console.frame import ConsoleUserDep, CsrfField, console_render
from api.pages.deps import PageUser, check_form_csrf
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import refused_words, typed_values
from api.pages.i18n import N_
from api.pages.rendering import see_other
from welfare.authz import Permission, require
from welfare.errors import InvalidInput
from welfare.identity import service as identity
from welfare.identity.models import IdentityProviderCreate, IdentityProviderUpdate
from welfare.settings import Settings

router = APIRouter(route_class=PageRoute, prefix="/console", include_in_schema=False)

SECTION = "/console/identity-providers"
FIELDS = {
    "display_name": N_("Button text: 1-80 characters, such as 'Sign in with Acme'."),
    "issuer": N_("Issuer URL: the provider's address, starting with https://."),
    "client_id": N_("Client id: as the provider gave it, without spaces."),
    "client_secret": N_("Client secret: as the provider gave it."),
    "allowed_domains": N_("Allowed e-mail domains: such as acme.com, separated by commas."),
    "site_ids": N_("Choose at least one site."),
}
Text = Annotated[str, Form(max_length=2000)]


ClientId = Annotated[str, Form(max_length=500)]
SiteIds = Annotated[list[str] | None, Form(max_length=500)]
Flag = Annotated[bool, Form()]
# The provider form's fields as shown again (the secret is never sent back).
SHOWN_FIELDS = (
    "display_name",
    "issuer",
    "client_id",
    "allowed_domains",
    "site_ids",
    "enforces_two_factor",
    "is_active",
)


def _typed(given: Mapping[str, Any]) -> dict[str, Any]:
    typed = typed_values(given, SHOWN_FIELDS)
    return typed | {"site_ids": typed["site_ids"] or []}


def _provider_data(typed: dict[str, Any]) -> dict[str, Any]:
    """The provider as the form gives it, but for its secret."""
    return {
        "display_name": typed["display_name"],
        "issuer": typed["issuer"],
        "client_id": typed["client_id"],
        "allowed_domains": _domains(typed["allowed_domains"]),
        "site_ids": parse_site_ids(typed["site_ids"]),
        "enforces_two_factor": typed["enforces_two_factor"],
        "is_active": typed["is_active"],
    }


def _domains(value: str) -> list[str]:
    return [part for part in value.replace("\n", ",").replace(" ", ",").split(",") if part]


def _list_page(
    request: Request,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    *,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    rows, _ = identity.list_providers(session=session, actor=page_user.actor, limit=200, offset=0)
    site_list = all_sites(session, page_user)
    names = {s.id: s.name for s in site_list}
    return console_render(
        request,
        page_user,
        "console/identity_providers.html",
        {
            "rows": [
                {
                    "provider": identity.to_public(session, settings, p),
                    "sites": [names.get(i, "?") for i in identity.site_ids_of(session, p.id)],
                }
                for p in rows
            ],
            "sites": site_list,
            "form": form or {"is_active": True},
            "errors": errors or [],
        },
        status_code=status_code,
        section=SECTION,
    )


@router.get("/identity-providers")
def providers_list(
    request: Request, session: SessionDep, settings: SettingsDep, page_user: ConsoleUserDep
) -> Response:
    require(page_user.actor, Permission.users_manage)
    return _list_page(request, session, settings, page_user)


@router.post("/identity-providers")
def provider_create(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    display_name: Annotated[str, Form(max_length=200)] = "",
    issuer: Text = "",
    client_id: ClientId = "",
    client_secret: Text = "",
    allowed_domains: Text = "",
    site_ids: SiteIds = None,
    enforces_two_factor: Flag = False,
    is_active: Flag = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    require(page_user.actor, Permission.users_manage)
    typed = _typed(locals())
    try:
        provider = identity.create_provider(
            session=session,
            settings=settings,
            actor=page_user.actor,
            data=IdentityProviderCreate(**_provider_data(typed), client_secret=client_secret),
        )
    except (ValidationError, InvalidInput) as exc:
        redraw = partial(_list_page, request, session, settings, page_user, form=typed)
        raise FormError(redraw, errors=refused_words(page_user.language, exc, FIELDS)) from exc
    return see_other(f"{SECTION}/{provider.id}?done=created")


def _provider_page(
    request: Request,
    session: Session,
    settings: Settings,
    page_user: PageUser,
    provider_id: uuid.UUID,
    *,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    provider = identity.get_provider(
        session=session, actor=page_user.actor, provider_id=provider_id
    )
    public = identity.to_public(session, settings, provider)
    current = {
        "display_name": public.display_name,
        "issuer": public.issuer,
        "client_id": public.client_id,
        "allowed_domains": ", ".join(public.allowed_domains),
        "site_ids": [str(i) for i in public.site_ids],
        "enforces_two_factor": public.enforces_two_factor,
        "is_active": public.is_active,
    }
    return console_render(
        request,
        page_user,
        "console/identity_provider.html",
        {
            "provider": public,
            "secret_readable": identity.secret_readable(settings, provider),
            "form": form or current,
            "errors": errors or [],
            "sites": all_sites(session, page_user),
        },
        status_code=status_code,
        section=SECTION,
    )


@router.get("/identity-providers/{provider_id}")
def provider_view(
    request: Request,
    provider_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
) -> Response:
    return _provider_page(request, session, settings, page_user, provider_id)


@router.post("/identity-providers/{provider_id}")
def provider_update(
    request: Request,
    provider_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    page_user: ConsoleUserDep,
    display_name: Annotated[str, Form(max_length=200)] = "",
    issuer: Text = "",
    client_id: ClientId = "",
    client_secret: Text = "",
    allowed_domains: Text = "",
    site_ids: SiteIds = None,
    enforces_two_factor: Flag = False,
    is_active: Flag = False,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    typed = _typed(locals())
    try:
        identity.update_provider(
            session=session,
            settings=settings,
            actor=page_user.actor,
            provider_id=provider_id,
            # Left blank: keep the stored secret (the page never shows it).
            data=IdentityProviderUpdate(
                **_provider_data(typed), client_secret=client_secret or None
            ),
        )
    except (ValidationError, InvalidInput) as exc:
        redraw = partial(
            _provider_page, request, session, settings, page_user, provider_id, form=typed
        )
        raise FormError(redraw, errors=refused_words(page_user.language, exc, FIELDS)) from exc
    return see_other(f"{SECTION}/{provider_id}?done=saved")


@router.post("/identity-providers/{provider_id}/delete")
def provider_delete(
    provider_id: uuid.UUID,
    session: SessionDep,
    page_user: ConsoleUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    identity.delete_provider(session=session, actor=page_user.actor, provider_id=provider_id)
    return see_other(f"{SECTION}?done=deleted")
