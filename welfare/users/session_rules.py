"""When a sign-in session counts as used, idle or worth a last-seen write: pure functions.

- A session's `last_seen_at` is written at most once per `TOUCH_EVERY` (one conditional UPDATE),
  so using a session costs no write on almost every request.
- A session unused for longer than its idle limit is over: guards on patrol get a long limit
  (the phone sits in a pocket between rounds), office staff and above a short one.
- Because `last_seen_at` may lag by up to `TOUCH_EVERY`, the idle limit is measured from it
  and is at most that much early, never late.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from welfare.authz import Role
from welfare.settings import Settings

TOUCH_EVERY = dt.timedelta(minutes=1)
DEVICE_MAX = 60

_BROWSERS = (  # order matters: Edge and Opera say "Chrome", Chrome says "Safari"
    ("Edg", "Edge"),
    ("OPR", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chrome", "Chrome"),
    ("Safari", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def idle_limit(role: Role, settings: Settings) -> dt.timedelta:
    minutes = (
        settings.idle_timeout_minutes_guard
        if role == Role.guard
        else settings.idle_timeout_minutes_staff
    )
    return dt.timedelta(minutes=minutes)


def is_idle(last_seen_at: dt.datetime, role: Role, settings: Settings, now: dt.datetime) -> bool:
    return now - last_seen_at > idle_limit(role, settings)


def needs_touch(last_seen_at: dt.datetime, now: dt.datetime) -> bool:
    return now - last_seen_at >= TOUCH_EVERY


def describe_device(user_agent: str | None) -> str | None:
    """ "Firefox · Android" from a browser's User-Agent; a shortened raw value when unknown."""
    if not user_agent or not user_agent.strip():
        return None
    browser = next((name for key, name in _BROWSERS if key in user_agent), None)
    system = next((name for key, name in _SYSTEMS if key in user_agent), None)
    if browser or system:
        return " · ".join(part for part in (browser, system) if part)
    text = re.sub(r"\s+", " ", user_agent).strip()
    return text if len(text) <= DEVICE_MAX else text[: DEVICE_MAX - 1] + "…"


# --- the second factor -------------------------------------------------------------------------

# How a sign-in may have proved a second factor (`AuthSession.second_factor`).
# "device_pin": a guard's PIN on the shared phone it was set on (the phone's token and the PIN).
# "company": a company identity provider that the admin marked as enforcing two-factor sign-in.
SECOND_FACTORS = frozenset({"totp", "recovery", "passkey", "device_pin", "company"})


def satisfies_second_factor(second_factor: str | None) -> bool:
    """Whether a session was opened with a second factor: the one place that says so (a
    passkey sign-in, for one, would count here too)."""
    return second_factor in SECOND_FACTORS


def second_factor_required(
    role: Role,
    own_sites: Iterable[tuple[bool, bool]],
    any_site_requires_staff: bool,
) -> bool:
    """Whether a user must sign in with a second factor.

    `own_sites` holds (require_second_factor_staff, require_second_factor_guards) for each site
    the user belongs to. Staff and managers follow their sites' staff setting, guards the guard
    setting; admins reach every site's records of users and settings, so any site that requires
    it of staff requires it of every admin.
    """
    if role == Role.admin:
        return any_site_requires_staff or any(staff for staff, _ in own_sites)
    if role == Role.guard:
        return any(guards for _, guards in own_sites)
    return any(staff for staff, _ in own_sites)
