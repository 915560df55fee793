"""Open streams re-check their caller, so revoking access also ends what is already open.

A stream (SSE, the events WebSocket, a GraphQL socket) authenticates once when it opens and
may then stay open for hours. Every ``stream_recheck_s`` seconds (5 by default) it asks the
identity service whether its principal still stands: the API key not revoked or expired and
its creator still entitled, the session not ended, the user enabled, the membership there.
When not, the stream ends within that interval, in every process, with no notification
needed: the check reads the same rows a new request would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cadenza.application.identity import AuthError, Forbidden, Principal
from cadenza.interfaces.api.services import ApiServices

log = logging.getLogger(__name__)


async def until_revoked(
    svc: ApiServices, p: Principal, updated: Callable[[Principal], None] | None = None
) -> str:
    """Return why ``p`` may no longer read, once it may not; ``updated`` hears the principal
    as it stands after each check (a lowered role, for sockets that run more operations).
    A failed check (the database unreachable) ends the stream too: it fails closed, and the
    client resumes it with ``Last-Event-ID`` when it reconnects."""
    while True:
        await asyncio.sleep(svc.stream_recheck_s)
        try:
            p = await svc.identity.revalidate(p)
        except (AuthError, Forbidden) as exc:
            return str(exc)
        except Exception:
            log.exception("re-checking the credentials of an open stream failed")
            return "the credentials could not be re-checked"
        if updated is not None:
            updated(p)
