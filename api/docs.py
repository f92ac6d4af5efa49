"""The API's documentation page, `/docs`, with Swagger UI served from this package.

FastAPI's own page loads Swagger UI from a CDN, so on a network without one (a site office, a
test rig) it stays blank. The two files it needs are vendored under static/vendor/swagger-ui/
(see the README there) and go out like every static file: versioned, gzip-encoded, cached.
ReDoc is turned off rather than vendored too: one documentation page is enough.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.pages.rendering import static_url

router = APIRouter(include_in_schema=False)

SWAGGER_JS = "vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "vendor/swagger-ui/swagger-ui.css"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    root_path = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=root_path + app.openapi_url,
        title=f"{app.title} - API",
        swagger_js_url=static_url(SWAGGER_JS),
        swagger_css_url=static_url(SWAGGER_CSS),
        swagger_favicon_url=static_url("icons/favicon.ico"),
    )
