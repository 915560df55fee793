"""Security headers on every HTTP response: CSP, framing, MIME sniffing, referrer.

Pure ASGI, wrapped around the whole application (outside Starlette's error middleware), so
the gateway's own refusals and the 500 page carry the headers too.

Two policies:

- ``CONSOLE_CSP`` for everything (the built web console and the API): scripts, styles,
  fonts and connections from the server's own origin only. Styles also allow
  ``'unsafe-inline'``: antd's CSS-in-JS inserts ``<style>`` elements at run time. No
  ``'unsafe-eval'``: nothing in the console needs it.
- ``DOCS_CSP`` for ``/docs`` (the Swagger UI page, ``docs.py``): stricter still. Everything
  it loads is served from its own origin and it runs no inline script, so nothing but
  ``'self'`` is allowed, styles included (Swagger UI sets styles through the DOM, which a
  policy does not restrict), and no forms.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATH = "/docs"

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


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
        csp = DOCS_CSP if scope["path"] == DOCS_PATH else CONSOLE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with(message, csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)
