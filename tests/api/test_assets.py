"""Static delivery: the API docs page with no CDN, cache lifetimes of static files, the favicon,
and compression of pages and files (but never of the live event stream)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

from fastapi.testclient import TestClient

from api.assets import IMMUTABLE, SHORT
from api.pages.rendering import TEMPLATES_DIR, static_url
from welfare.sites.models import Site
from welfare.users.models import User


class _Links(HTMLParser):
    """Every URL a page loads or links: src and href of any element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # tag, rel, url
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append((tag, found.get("rel") or "", found[name] or ""))
        if tag == "link" and "icon" in (found.get("rel") or "").split():
            self.icons.append(found.get("href") or "")


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".ico": ("image/x-icon", "image/vnd.microsoft.icon"),
    ".png": ("image/png",),
}


def _content_type_fits(url: str, content_type: str) -> bool:
    path = url.split("?", 1)[0]
    suffix = path[path.rfind(".") :]
    return content_type.split(";")[0].strip() in CONTENT_TYPES[suffix]


# --- /docs without a CDN ----------------------------------------------------------------------


def test_docs_page_loads_only_from_this_server_and_every_asset_answers(
    client: TestClient,
) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "SwaggerUIBundle" in html
    # Nothing from elsewhere: no absolute URL anywhere, in attributes or in the inline script.
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), html
    assets = [url for _tag, _rel, url in _links(html).urls]
    assert {url.split("?")[0] for url in assets} == {
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
        "/static/icons/favicon.ico",
    }
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert _content_type_fits(url, asset.headers["content-type"]), (url, asset.headers)
    assert "url: '/openapi.json'" in html
    assert client.get("/openapi.json").status_code == 200


def test_the_vendored_swagger_ui_is_the_real_bundle(client: TestClient) -> None:
    js = client.get(static_url("vendor/swagger-ui/swagger-ui-bundle.js"))
    assert js.content.startswith(b"/*! For license information")
    assert b"SwaggerUIBundle" in js.content
    assert len(js.content) > 500_000
    css = client.get(static_url("vendor/swagger-ui/swagger-ui.css"))
    assert css.text.startswith(".swagger-ui{")


def test_redoc_is_off_and_docs_are_not_in_the_openapi_document(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/docs" not in paths
    assert "/favicon.ico" not in paths


# --- cache lifetimes --------------------------------------------------------------------------


def test_a_hashed_static_url_may_be_kept_a_year(client: TestClient) -> None:
    response = client.get(static_url("app.js"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"


def test_an_unversioned_or_stale_static_url_is_kept_briefly(client: TestClient) -> None:
    for url in ("/static/app.js", "/static/app.js?v=0123456789", "/static/icons/icon-192.png"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == SHORT, url
    assert re.fullmatch(r"public, max-age=\d{1,4}", SHORT)


def test_a_revalidated_static_file_keeps_its_lifetime(client: TestClient) -> None:
    url = static_url("app.css")
    etag = client.get(url).headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["cache-control"] == IMMUTABLE


def test_a_missing_static_file_is_not_cached(client: TestClient) -> None:
    response = client.get("/static/nothing-here.js?v=abc")
    assert response.status_code == 404
    assert "immutable" not in response.headers.get("cache-control", "")


# --- the favicon ------------------------------------------------------------------------------


def test_favicon_is_served_at_the_root(client: TestClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert response.headers["cache-control"] == SHORT


def test_every_base_template_links_an_icon() -> None:
    # A template that starts a document (not one that extends another) must name the icon.
    bases = [
        path
        for path in TEMPLATES_DIR.rglob("*.html")
        if "<html" in path.read_text(encoding="utf-8")
        and "{% extends" not in path.read_text(encoding="utf-8")
    ]
    assert bases
    for path in bases:
        assert 'rel="icon"' in path.read_text(encoding="utf-8"), path


def test_pages_of_every_area_link_icons_that_answer(
    client: TestClient,
    page_login: Callable[..., str],
    make_user: Callable[..., User],
    site: Site,
) -> None:
    pages = {"/login": None, "/guard": "guard", "/console": "staff", "/manage/visits": "manager"}
    for path, role in pages.items():
        if role:
            page_login(make_user(role, [site]))
        response = client.get(path)
        assert response.status_code == 200, path
        icons = _links(response.text).icons
        assert icons, path
        assert len(icons) == len(set(icons)), path  # no icon linked twice
        for url in icons:
            icon = client.get(url)
            assert icon.status_code == 200, url
            assert _content_type_fits(url, icon.headers["content-type"]), url


# --- compression ------------------------------------------------------------------------------

GZIP = {"Accept-Encoding": "gzip"}


def _raw_size(client: TestClient, url: str, headers: dict[str, str]) -> tuple[int, str | None]:
    """Bytes on the wire (before the client decodes them) and the Content-Encoding."""
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, url
        size = sum(len(chunk) for chunk in response.iter_raw())
        return size, response.headers.get("content-encoding")


def test_pages_and_static_files_are_gzip_encoded_when_asked(
    client: TestClient, page_login: Callable[..., str], make_user: Callable[..., User], site: Site
) -> None:
    page_login(make_user("guard", [site]))
    swagger = static_url("vendor/swagger-ui/swagger-ui-bundle.js")
    for url in ("/login", "/guard", static_url("app.css"), static_url("guard.js"), swagger):
        plain, plain_encoding = _raw_size(client, url, {"Accept-Encoding": "identity"})
        packed, encoding = _raw_size(client, url, GZIP)
        assert plain_encoding is None, url
        assert encoding == "gzip", url
        assert packed < plain * 0.7, (url, packed, plain)
        response = client.get(url, headers=GZIP)
        assert "accept-encoding" in response.headers["vary"].lower(), url


def test_small_answers_and_images_are_not_compressed(client: TestClient) -> None:
    _size, encoding = _raw_size(client, "/healthz", GZIP)
    assert encoding is None  # a few bytes: gzip would only add its header
    _size, encoding = _raw_size(client, static_url("icons/icon-512.png"), GZIP)
    assert encoding is None  # PNG is compressed already


def test_a_range_of_a_static_file_is_not_compressed(client: TestClient) -> None:
    response = client.get(static_url("app.js"), headers=GZIP | {"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert len(response.content) == 100
