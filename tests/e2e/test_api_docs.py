"""The API docs page draws in a browser with nothing fetched from elsewhere."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def test_swagger_ui_draws_the_api_from_this_server_alone(desktop: Any, live_server: str) -> None:
    here = urlsplit(live_server).netloc
    elsewhere: list[str] = []
    failed: list[str] = []
    desktop.on(
        "request",
        lambda r: None if urlsplit(r.url).netloc in (here, "") else elsewhere.append(r.url),
    )
    desktop.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    desktop.goto("/docs")
    desktop.locator(".swagger-ui .info .title").get_by_text("welfare").wait_for()
    desktop.get_by_text("/api/v1/residents/{resident_id}").first.wait_for()
    # The bearer scheme is declared: Swagger UI offers to sign in, and marks locked operations.
    assert desktop.get_by_role("button", name="Authorize").is_visible()
    assert desktop.locator(".opblock .authorization__btn").count() > 40
    assert elsewhere == []
    assert failed == []
