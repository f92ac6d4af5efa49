"""Jinja2 rendering with gettext, per-page security headers and small display helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from api.pages.i18n import language_name, translations_for
from welfare.lookup.text import fold
from welfare.times import zone
from welfare.users.models import UI_LANGUAGES

API_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = API_DIR / "templates"
STATIC_DIR = API_DIR / "static"

# Scripts and styles only from our own origin, no inline code, no framing, forms post home.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "manifest-src 'self'",
        "worker-src 'self'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The guard app needs the camera (tag scanning) and location (found reports), nothing else.
    "Permissions-Policy": "camera=(self), geolocation=(self), microphone=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Pages carry personal data: never kept by shared caches or the browser's back cache.
    "Cache-Control": "no-store",
}


@cache
def static_version(name: str) -> str:
    """A short content hash so a changed file is fetched anew (and the service worker updates)."""
    path = STATIC_DIR / name
    if not path.is_file():
        return "0"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_version(name)}"


def local_time(
    value: dt.datetime | None, timezone: str | None = None, fmt: str = "%Y-%m-%d %H:%M"
) -> str:
    """A stored UTC time shown in the site's timezone (UTC when none is known)."""
    if value is None:
        return ""
    tz = zone(timezone) if timezone else dt.UTC
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(tz).strftime(fmt)


_WORD = re.compile(r"\w+")


def highlight(value: str | None, terms: list[str] | tuple[str, ...] | None) -> Markup:
    """`value` escaped, with each word that contains one of `terms` (folded query words, as the
    lookup reports them) in <mark>: "grey coat" marks "Grey" and "coat" in "Grey padded coat"."""
    if not value:
        return Markup("")
    wanted = [t for t in (terms or ()) if t]
    if not wanted:
        return escape(value)
    out: list[str] = []
    position = 0
    for word in _WORD.finditer(value):
        folded = fold(word.group())
        if any(term in folded for term in wanted):
            out.append(str(escape(value[position : word.start()])))
            out.append(f"<mark>{escape(word.group())}</mark>")
            position = word.end()
    out.append(str(escape(value[position:])))
    return Markup("".join(out))


@cache
def environment(language: str) -> Environment:
    """One environment per UI language: gettext installed once, safe across threads."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations_for(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["static_url"] = static_url
    env.globals["ui_languages"] = [(code, language_name(code)) for code in UI_LANGUAGES]
    env.filters["local_time"] = local_time
    env.filters["highlight"] = highlight
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    language: str | None = None,
) -> HTMLResponse:
    """Render a page in the request's UI language with the page security headers."""
    language = language or getattr(request.state, "language", None) or "en"
    values: dict[str, Any] = {
        "request": request,
        "lang": language,
        "page_user": getattr(request.state, "page_user", None),
    }
    values.update(context or {})
    html = environment(language).get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def see_other(url: str) -> RedirectResponse:
    """After a form is taken: the browser loads `url` with a GET (303), so a reload does not
    post the form again."""
    return RedirectResponse(url, status_code=303)
