"""A subscription that outlives the bus dropping: consumers (the event hub, the sweeper)
``follow`` a group and get each fresh message once (duplicates filtered, ``dedupe``).

When the subscription ends or fails (``BusUnavailable``, a closed connection) it is opened
again after a backoff that doubles from ``RETRY_FIRST_S`` to ``RETRY_MAX_S``, and reset by
the next message. Messages published while no subscription was open are not replayed: the
consumers then catch up from the store (the feed's poll, the sweep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from cadenza.application.dedupe import SeenSequences
from cadenza.application.ports_bus import BusMessage, EventBus

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


async def follow(
    bus: EventBus,
    group: str,
    handle: Callable[[BusMessage], None],
    *,
    on_open: Callable[[], None] = lambda: None,
) -> None:
    """Subscribe to ``group`` and call ``handle`` with every fresh message, forever (until
    cancelled); ``on_open`` is called each time the subscription is (re)opened."""
    seen = SeenSequences()
    delay = 0.0
    while True:
        if delay:
            await asyncio.sleep(delay)
        delay = min(RETRY_MAX_S, max(RETRY_FIRST_S, delay * 2))
        messages = bus.subscribe(group)
        try:
            on_open()
            async for message in messages:
                delay = 0.0
                if seen.fresh(message):
                    handle(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # BusUnavailable, a dropped connection: subscribe again
            log.warning("bus subscription %s dropped (%s); resubscribing", group, exc)
        finally:
            if isinstance(messages, AsyncGenerator):  # leave the group now, not at GC
                await messages.aclose()
