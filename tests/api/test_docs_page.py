"""``/docs`` (Swagger UI) works with no network: its page names only files of its own origin,
runs no inline script, carries a ``'self'``-only policy, and serves only its listed files.

The browser test (tests/browser/test_api_docs.py) checks that the page renders with every
request to another host blocked."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.api.harness import serve

import cadenza.bootstrap.api as bootstrap_api
from cadenza.interfaces.api.docs import ASSETS, ASSETS_DIR
from cadenza.interfaces.api.headers import DOCS_CSP

DIST = Path(bootstrap_api.__file__).parents[1] / "web" / "dist"
COMMON = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


class Refs(HTMLParser):
    """Every URL the page names (src, href, data-*-url) and the text of its scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and (name in ("src", "href") or name.endswith("-url")):
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


def refs(page: str) -> Refs:
    parser = Refs()
    parser.feed(page)
    return parser


def same_origin(ref: str) -> bool:
    """A path on this server: not absolute (scheme://), not protocol-relative (//host)."""
    return ref.startswith("/") and not ref.startswith("//")


async def test_the_docs_page_names_only_same_origin_files(url: str) -> None:
    if not (DIST / ASSETS_DIR / "swagger-ui-bundle.js").is_file():
        reason = f"the console is not built ({DIST}): run `make ui`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    async with serve(url) as srv:
        page = await srv.anonymous.get("/docs")
        assert page.status == 200
        assert page.headers["Content-Security-Policy"] == DOCS_CSP
        assert {k: page.headers.get(k) for k in COMMON} == COMMON
        found = refs(page.body)
        assert found.inline == []
        assert sorted(found.urls) == [
            "/docs/init.js",
            "/docs/swagger-ui-bundle.js",
            "/docs/swagger-ui.css",
            "/openapi.json",
        ]
        assert all(same_origin(ref) for ref in found.urls)
        for ref, kind in (
            ("/docs/swagger-ui-bundle.js", "javascript"),
            ("/docs/init.js", "javascript"),
            ("/docs/swagger-ui.css", "text/css"),
        ):
            asset = await srv.anonymous.get(ref)
            assert (asset.status, kind in asset.headers["Content-Type"]) == (200, True), ref
        bundle = await srv.anonymous.get("/docs/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in bundle.body
        assert (await srv.anonymous.get("/openapi.json")).status == 200


async def test_without_a_built_console_docs_says_how_to_build_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap_api, "static_dir", lambda: None)
    async with serve(url) as srv:
        page = await srv.anonymous.get("/docs")
        assert page.status == 404
        assert "make ui" in page.body
        assert page.headers["Content-Security-Policy"] == DOCS_CSP
        assert refs(page.body).urls == ["/openapi.json"]
        assert (await srv.anonymous.get("/docs/swagger-ui-bundle.js")).status == 404
        assert (await srv.anonymous.get("/openapi.json")).status == 200


async def test_only_the_listed_files_are_served(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    static = tmp_path / "dist"
    (static / ASSETS_DIR).mkdir(parents=True)
    for name in ASSETS:
        (static / ASSETS_DIR / name).write_text(f"/* {name} */")
    (static / ASSETS_DIR / "extra.js").write_text("not listed")
    (static / "secret.txt").write_text("outside the docs folder")
    monkeypatch.setattr(bootstrap_api, "static_dir", lambda: static)
    async with serve(url) as srv:
        assert (await srv.anonymous.get("/docs")).status == 200
        init = await srv.anonymous.get("/docs/init.js")
        assert (init.status, init.body) == (200, "/* init.js */")
        for path in ("/docs/extra.js", "/docs/..%2Fsecret.txt", "/docs/%2E%2E%2Fsecret.txt"):
            assert (await srv.anonymous.get(path)).status == 404, path
