"""Security headers on every HTTP response: CSP, framing, MIME sniffing, referrer.

Pure ASGI, wrapped around the whole application (outside Starlette's error middleware), so
the gateway's own refusals and the 500 page carry the headers too.

Two policies:

- ``CONSOLE_CSP`` for everything (the built web console and the API): scripts, styles,
  fonts and connections from the server's own origin only. Styles also allow
  ``'unsafe-inline'``: antd's CSS-in-JS inserts ``<style>`` elements at run time. No
  ``'unsafe-eval'``: nothing in the console needs it.
- ``/docs`` and ``/docs/oauth2-redirect`` (FastAPI's Swagger UI page) load Swagger UI from
  ``DOCS_CDN`` and run one inline script each: their policy allows that origin and exactly
  those inline scripts, by SHA-256 hash computed from the page being sent (so a script
  injected into the page would not run).
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_CDN = "https://cdn.jsdelivr.net"  # where FastAPI's Swagger UI page loads its bundle
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_DOCS_CSP = (
    "default-src 'none'; script-src {scripts}; style-src " + DOCS_CDN + " 'unsafe-inline'; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_csp(page: bytes) -> str:
    """The /docs policy for this page: the CDN plus each inline script's hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(page)
    ]
    return _DOCS_CSP.format(scripts=" ".join([DOCS_CDN, *hashes]))


def _with(message: Message, csp: str) -> Message:
    present = {name.lower() for name, _ in message.get("headers", [])}
    extra = [(k, v) for k, v in COMMON if k not in present]
    if b"content-security-policy" not in present:
        extra.append((b"content-security-policy", csp.encode()))
    return {**message, "headers": [*message.get("headers", []), *extra]}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with(message, CONSOLE_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the (small, static) page until it is complete, then hash its scripts."""
        start: Message | None = None
        body: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                page = b"".join(body)
                await send(_with(start, docs_csp(page)))
                await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, collect)
