"""The manager's page for a site's escalation policy (/manage/policy): the policy in words, a form
that saves it through the same service as the JSON PUT (which audits it), and the residents
whose own policy overrides the site's.

Thin: PolicyBody decides what is valid; this page turns its refusals into field messages that
say how to fix them, and keeps what was typed.
"""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import SessionDep, TransactionRoute
from api.pages.deps import CSRF_FIELD, PageUser, PageUserDep, check_form_csrf
from api.pages.i18n import N_, gettext
from api.pages.manager.frame import choose_site
from api.pages.rendering import render, see_other
from welfare.authz import Actor, Permission, require
from welfare.errors import NotFound
from welfare.incidents import policies
from welfare.incidents.escalation import Policy, StepKind, plan
from welfare.incidents.policies import PolicyBody
from welfare.sites.models import Site
from welfare.visits import manager_view

router = APIRouter(route_class=TransactionRoute, prefix="/manage", include_in_schema=False)

CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)]
NumberField = Annotated[str, Form(max_length=20)]
CHANNEL_WORDS = {"sms": N_("SMS"), "voice": N_("Call")}
# How many times the list is gone through, by the policy's repeat_list (repeats after the first).
ROUND_WORDS = {
    0: N_("Once"),
    1: N_("Twice"),
    2: N_("Three times"),
    3: N_("Four times"),
}
FIELD_MESSAGES = {
    "contact_interval_seconds": N_(
        "Give a whole number of seconds between %(low)s and %(high)s (2 minutes is 120)."
    ),
    "manager_after_seconds": N_(
        "Give a whole number of seconds between %(low)s and %(high)s (10 minutes is 600)."
    ),
    "repeat_list": N_("Choose how many times to go through the list, from the choices shown."),
    "channels": N_("Choose SMS, a call, or both."),
}
EXAMPLE_CONTACTS = 3  # the preview's family


def manager_page_user(page_user: PageUserDep) -> PageUser:
    """Managers and admins; guards and staff are refused (403)."""
    require(page_user.actor, Permission.escalation_policy)
    return page_user


ManagerUserDep = Annotated[PageUser, Depends(manager_page_user)]


def _bounds(name: str) -> dict[str, int]:
    """The limits PolicyBody sets on a number, for the message that names them."""
    found: dict[str, int] = {}
    for rule in PolicyBody.model_fields[name].metadata:
        if isinstance(rule, Ge):
            found["low"] = int(rule.ge)  # type: ignore[call-overload]
        elif isinstance(rule, Le):
            found["high"] = int(rule.le)  # type: ignore[call-overload]
    return found


def _field_messages(language: str, exc: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in FIELD_MESSAGES and name not in out:
            message = gettext(language, FIELD_MESSAGES[name])
            out[name] = message % _bounds(name) if "%(" in message else message
    return out


def _form_of(policy: Policy | PolicyBody) -> dict[str, Any]:
    return {
        "contact_interval_seconds": str(policy.contact_interval_seconds),
        "manager_after_seconds": str(policy.manager_after_seconds),
        "repeat_list": str(policy.repeat_list),
        "channels": list(policy.channels),
        "urgent": policy.urgent,
        "advance_on_miss": policy.advance_on_miss,
    }


def _duration(language: str, seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    if minutes and rest:
        return gettext(language, N_("%(minutes)s min %(seconds)s s")) % {
            "minutes": minutes,
            "seconds": rest,
        }
    if minutes:
        return gettext(language, N_("%(minutes)s min")) % {"minutes": minutes}
    return gettext(language, N_("%(seconds)s s")) % {"seconds": rest}


def _preview(language: str, policy: Policy) -> list[tuple[str, str]]:
    """What happens with a family of three when nobody confirms: (time, who) rows."""
    rows = []
    for step in plan(policy, [str(n) for n in range(1, EXAMPLE_CONTACTS + 1)]):
        if step.kind is StepKind.duty_manager:
            who = gettext(language, N_("The duty manager"))
        else:
            who = gettext(language, N_("Contact %(n)s (round %(round)s)")) % {
                "n": step.contact_id,
                "round": step.round,
            }
        minutes, seconds = divmod(step.offset_seconds, 60)
        rows.append((f"{minutes}:{seconds:02d}", who))
    return rows


def _overrides(session: Session, actor: Actor, language: str, site: Site) -> list[dict[str, Any]]:
    rows = policies.resident_overrides(session=session, actor=actor, site_id=site.id)
    names = manager_view.resident_names(session, {r.resident_id for r in rows if r.resident_id})
    out = [
        {
            "resident_id": row.resident_id,
            "name": names.get(row.resident_id, "—"),  # type: ignore[arg-type]
            "wait": _duration(language, Policy.from_json(row.settings).contact_interval_seconds),
        }
        for row in rows
        if row.resident_id in names
    ]
    return sorted(out, key=lambda o: (o["name"], str(o["resident_id"])))


def _policy_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    sites: list[Site],
    site: Site | None,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "sites": sites,
        "site": site,
        "errors": errors or {},
        "channel_words": CHANNEL_WORDS,
        "round_words": ROUND_WORDS,
        "limits": {
            name: _bounds(name) for name in ("contact_interval_seconds", "manager_after_seconds")
        },
    }
    if site is not None:
        current = policies.effective_policy(session=session, actor=page_user.actor, site_id=site.id)
        saved = Policy.from_json(current.model_dump())
        language = page_user.language
        context.update(
            source=current.source,
            saved=saved,
            interval_words=_duration(language, saved.contact_interval_seconds),
            manager_words=_duration(language, saved.manager_after_seconds),
            preview=_preview(language, saved),
            overrides=_overrides(session, page_user.actor, language, site),
            form=form or _form_of(saved),
        )
    return render(request, "manager/policy.html", context, status_code=status_code)


@router.get("/policy")
def policy_page(
    request: Request, session: SessionDep, page_user: ManagerUserDep, site_id: str | None = None
) -> Response:
    sites = manager_view.visible_sites(session, page_user.actor)
    return _policy_page(request, session, page_user, sites=sites, site=choose_site(sites, site_id))


@router.post("/policy")
def save_policy(
    request: Request,
    session: SessionDep,
    page_user: ManagerUserDep,
    csrf_token: CsrfField = None,
    site_id: Annotated[str, Form(max_length=60)] = "",
    contact_interval_seconds: NumberField = "",
    manager_after_seconds: NumberField = "",
    repeat_list: NumberField = "",
    channels: Annotated[list[str] | None, Form()] = None,
    urgent: Annotated[bool, Form()] = False,
    advance_on_miss: Annotated[bool, Form()] = False,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    sites = manager_view.visible_sites(session, page_user.actor)
    # The form names its site; one that is not the user's is not found (404).
    site = choose_site(sites, site_id) if site_id else None
    if site is None:
        raise NotFound("site")
    form = {
        "contact_interval_seconds": contact_interval_seconds.strip(),
        "manager_after_seconds": manager_after_seconds.strip(),
        "repeat_list": repeat_list.strip(),
        "channels": channels or [],
        "urgent": urgent,
        "advance_on_miss": advance_on_miss,
    }
    try:
        body = PolicyBody.model_validate(form)
    except ValidationError as exc:
        errors = _field_messages(page_user.language, exc)
        errors = errors or {
            "form": gettext(page_user.language, N_("Some of the values are not valid."))
        }
        return _policy_page(
            request,
            session,
            page_user,
            sites=sites,
            site=site,
            form=form,
            errors=errors,
            status_code=422,
        )
    policies.set_policy(session=session, actor=page_user.actor, body=body, site_id=site.id)
    return see_other(f"/manage/policy?site_id={site.id}&saved=1")
