"""``/docs``: the API's Swagger UI page, with no request to any other origin.

FastAPI's own page loads Swagger UI from a CDN and runs an inline script: offline it is
blank, and its policy had to allow that CDN. Here the Swagger UI files come from the npm
package ``swagger-ui-dist`` (pinned in ``ui/package.json``), which the console build copies
into ``web/dist/api-docs/`` together with ``init.js`` (``ui/public/api-docs/``), so they ship
in the wheel with the console. The page names only those same-origin files and runs no
inline script, so its policy (``headers.DOCS_CSP``) is ``'self'`` only.

Without a built console there is no Swagger UI to serve: ``/docs`` then says how to build
it, and ``/openapi.json`` still answers.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
ASSETS_DIR = "api-docs"  # inside the built console (web/dist)
# The only files /docs/{asset} serves: what the page loads, and the licence that ships with it.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "init.js", "LICENSE", "NOTICE"})

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{docs}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{docs}/swagger-ui-bundle.js"></script>
<script src="{docs}/init.js"></script>
</body>
</html>
"""
_NOT_BUILT = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<p>The API docs page ships with the built web console, which this installation lacks
(from a checkout: <code>make ui</code>). The OpenAPI document is at
<a href="{openapi}">{openapi}</a>.</p>
</body>
</html>
"""


def install(app: FastAPI, static_dir: Path | None) -> None:
    """``GET /docs`` and ``GET /docs/{asset}`` (both on the public-route list)."""
    root = static_dir.resolve() / ASSETS_DIR if static_dir is not None else None
    built = root is not None and all((root / name).is_file() for name in ASSETS)
    fields = {"title": escape(f"{app.title} API"), "openapi": escape(app.openapi_url or "")}
    page = (_PAGE if built else _NOT_BUILT).format(docs=DOCS_URL, **fields)

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, status_code=200 if built else 404)

    @app.get(DOCS_URL + "/{asset}", include_in_schema=False)
    async def docs_asset(asset: str) -> FileResponse:
        if root is None or not built or asset not in ASSETS:
            raise HTTPException(404, f"no API docs file {asset!r}")
        return FileResponse(root / asset)
