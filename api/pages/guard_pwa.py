"""The installable guard app: web manifest and service worker, both served from the root.

The worker is served at `/sw.js` (not under /static) so its scope is the whole origin. It keeps
an offline shell (`/guard/offline`) and the static files; pages with personal data are never
cached (they are `no-store`), so a lost phone holds no resident's card.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import TransactionRoute
from api.pages.deps import request_language
from api.pages.i18n import gettext
from api.pages.rendering import STATIC_DIR, static_url, static_version

router = APIRouter(route_class=TransactionRoute, include_in_schema=False)

OFFLINE_SHELL = "/guard/offline"
PRECACHED_STATIC = ("app.css", "app.js", "guard.css", "guard.js", "icons/icon-192.png")
ICONS = (("icons/icon-192.png", "192x192"), ("icons/icon-512.png", "512x512"))


def cache_version() -> str:
    """Changes whenever a precached file or the worker itself changes: the new worker installs."""
    parts = [static_version(name) for name in (*PRECACHED_STATIC, "sw.js")]
    return "welfare-" + "-".join(p[:4] for p in parts)


@router.get("/sw.js")
def service_worker() -> Response:
    source = (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
    config = {
        "cache": cache_version(),
        "shell": OFFLINE_SHELL,
        "precache": [static_url(name) for name in PRECACHED_STATIC],
    }
    body = f"self.WELFARE_SW = {json.dumps(config)};\n{source}"
    return Response(
        body,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/manifest.webmanifest")
def manifest(request: Request) -> Response:
    language = request_language(request)
    data = {
        "name": gettext(language, "Welfare guard"),
        "short_name": gettext(language, "Guard"),
        "description": gettext(language, "Identify a found resident and call the family."),
        "lang": language,
        "start_url": "/guard",
        "scope": "/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": "#0b4f8a",
        "icons": [
            {
                "src": static_url(path),
                "sizes": sizes,
                "type": "image/png",
                "purpose": "any maskable",
            }
            for path, sizes in ICONS
        ],
    }
    return Response(
        json.dumps(data, ensure_ascii=False),
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache"},
    )
