"""Static files with cache lifetimes, and the favicon at the root where browsers look for it.

A URL made by `static_url` carries the file's content hash (`?v=`): while the hash is the
file's, the answer never changes and browsers may keep it a year without asking again. Any other
static URL (no `v`, or a stale one from a page cached before a release) is kept only briefly.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from api.pages.rendering import STATIC_DIR, static_version

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
FAVICON = "icons/favicon.ico"

router = APIRouter(include_in_schema=False)


def cache_control(name: str, query_string: bytes) -> str:
    """The Cache-Control for static file `name` asked for with `query_string`."""
    versions = parse_qs(query_string.decode("latin-1")).get("v", [])
    if versions == [static_version(name)]:
        return IMMUTABLE
    return SHORT


class StaticAssets(StaticFiles):
    """StaticFiles that says how long each answer (200 or 304) may be kept."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = self.get_path(scope).replace(os.sep, "/")
        response.headers["Cache-Control"] = cache_control(name, scope.get("query_string", b""))
        return response


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    return FileResponse(
        STATIC_DIR / FAVICON, media_type="image/x-icon", headers={"Cache-Control": SHORT}
    )
