"""The event bus on Redis Streams (``redis://[:password@]host:port/db[?stream=name]``, or
``rediss://`` for TLS): one stream, one consumer group per bus group.

- ``publish``: ``XADD`` of every message in one pipelined round trip, the stream trimmed to
  about ``STREAM_MAXLEN`` entries (``MAXLEN ~``: Redis trims whole macro nodes, so it may hold
  a few hundred more).
- ``subscribe(group)``: joins (``XGROUP CREATE ... $ MKSTREAM`` + ``CREATECONSUMER``, atomic in
  one script), reads with ``XREADGROUP ... BLOCK``, ``XACK``s a batch once the consumer took
  its messages. Leaving deletes the consumer (what it read but did not hand over goes to
  another member, which claims it at its next maintenance pass) and destroys the group when
  it was the last member.
- Crashed processes leave their consumer (and, if it was the only one, their group) behind.
  Every subscription runs a maintenance pass every ``MAINTENANCE_S``: it claims messages
  pending on a consumer for longer than ``CLAIM_IDLE_MS`` (``XAUTOCLAIM``: at-least-once
  within a group when a member died holding messages), deletes consumers idle for longer
  than ``DEAD_CONSUMER_MS`` with nothing pending, and destroys groups whose consumers are all
  that idle. Until then a dead group costs only its entry in the stream's group list: the
  stream itself stays bounded by ``STREAM_MAXLEN`` whatever the groups read.
- A server restart without persistence loses the stream and its groups: a subscription
  rejoins at ``$`` (what was published in between is lost for it; consumers re-read the store).
- Errors from Redis raise ``BusUnavailable`` (from ``publish``, ``ping`` and the iterator).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
from redis.exceptions import RedisError, ResponseError

from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.infrastructure.bus.codec import MalformedMessage, decode, encode

DEFAULT_STREAM = "cadenza:events"
STREAM_MAXLEN = 100_000  # entries kept (approximately): ~100 s of history at 1,000 events/s
READ_COUNT = 100  # entries one XREADGROUP (or XAUTOCLAIM) returns at most
BLOCK_MS = 5_000  # one XREADGROUP waits this long for entries before it is issued again
CLAIM_IDLE_MS = 60_000  # a message pending this long on a consumer is claimed by another
DEAD_CONSUMER_MS = 300_000  # a consumer that has not read for this long is considered dead
MAINTENANCE_S = 30.0  # how often each subscription claims and cleans up (see the module doc)
CONNECT_TIMEOUT_S = 5.0  # connecting to Redis
COMMAND_TIMEOUT_S = 15.0  # one command's reply (more than BLOCK_MS: XREADGROUP waits that long)
CLOSE_TIMEOUT_S = 5.0  # aclose waits this long for subscriptions to leave their groups
_FIELD = "m"  # the stream entry's one field: the orjson-encoded message

log = logging.getLogger(__name__)

# Join a group atomically: create it at "$" unless it exists, and this consumer in it, so a
# concurrent last member leaving can never destroy a group between the two steps.
_JOIN = """
local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM')
if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then return r end
redis.call('XGROUP', 'CREATECONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

_FIELD_OF = """
local function field(entry, name)
  for i = 1, #entry, 2 do if entry[i] == name then return entry[i + 1] end end
  return nil
end
"""

# Leave: destroy the group if this was its last consumer; else hand what is pending on this
# consumer (read, not taken) to another member, idle enough for its next XAUTOCLAIM to take
# it (ARGV[3] = CLAIM_IDLE_MS), and delete this consumer.
_LEAVE = (
    _FIELD_OF
    + """
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if consumers.err then return 0 end
local other = nil
for _, c in ipairs(consumers) do
  if field(c, 'name') ~= ARGV[2] then other = field(c, 'name') end
end
if other == nil then redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1]) return 2 end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
for _, p in ipairs(pending) do
  redis.call('XCLAIM', KEYS[1], ARGV[1], other, 0, p[1], 'IDLE', ARGV[3], 'JUSTID')
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
)

# Forget what crashed processes left: consumers idle past ARGV[1] ms with nothing pending,
# and groups whose consumers are all idle that long. Returns the number of groups destroyed.
_CLEANUP = (
    _FIELD_OF
    + """
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if groups.err then return 0 end
local destroyed = 0
for _, g in ipairs(groups) do
  local name = field(g, 'name')
  local live, dead = 0, {}
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], name)) do
    if field(c, 'idle') > tonumber(ARGV[1]) then
      if field(c, 'pending') == 0 then table.insert(dead, field(c, 'name')) end
    else
      live = live + 1
    end
  end
  if live == 0 then
    redis.call('XGROUP', 'DESTROY', KEYS[1], name)
    destroyed = destroyed + 1
  else
    for _, c in ipairs(dead) do redis.call('XGROUP', 'DELCONSUMER', KEYS[1], name, c) end
  end
end
return destroyed
"""
)

_Entries = list[tuple[bytes, dict[bytes, bytes] | None]]


def _unavailable(what: str, url: str, exc: BaseException) -> BusUnavailable:
    return BusUnavailable(f"Redis bus {url}: {what} failed: {type(exc).__name__}: {exc}")


class RedisStreamsBus:
    """``EventBus`` over one Redis stream (see the module doc)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"a Redis bus URL starts with redis:// or rediss:// (got {url!r})")
        query = parse_qsl(parts.query, keep_blank_values=True)
        self._stream = next((v for k, v in query if k == "stream"), DEFAULT_STREAM)
        if not self._stream:
            raise ValueError("the Redis bus URL's ?stream= must not be empty")
        rest = urlencode([(k, v) for k, v in query if k != "stream"])
        host = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
        self._url = f"{parts.scheme}://{host}{parts.path or '/0'}?stream={self._stream}"
        self._client = redis.asyncio.Redis.from_url(
            urlunsplit(parts._replace(query=rest)),
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
        )
        self._join = self._client.register_script(_JOIN)
        self._leave = self._client.register_script(_LEAVE)
        self._cleanup = self._client.register_script(_CLEANUP)
        self._closing = asyncio.Event()
        self._members: set[asyncio.Event] = set()  # one per live subscription, set when it left

    @property
    def url(self) -> str:
        return self._url

    @property
    def local(self) -> bool:
        return False

    @property
    def stream(self) -> str:
        return self._stream

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        if not messages:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.xadd(
                        self._stream,
                        {_FIELD: encode(message)},
                        maxlen=STREAM_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable("publish", self._url, exc) from exc

    async def subscribe(self, group: str) -> AsyncIterator[BusMessage]:
        if self._closing.is_set():
            return
        consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        left = asyncio.Event()
        self._members.add(left)
        closing = asyncio.ensure_future(self._closing.wait())
        read: asyncio.Future[Any] | None = None
        taken: list[bytes] = []
        try:
            await self._call("join", self._join(keys=[self._stream], args=[group, consumer]))
            maintained = time.monotonic()
            while not self._closing.is_set():
                entries: _Entries = []
                if time.monotonic() - maintained >= MAINTENANCE_S:
                    maintained = time.monotonic()
                    entries = await self._maintain(group, consumer)
                if not entries:
                    read = asyncio.ensure_future(self._read(group, consumer))
                    await asyncio.wait({read, closing}, return_when=asyncio.FIRST_COMPLETED)
                    if not read.done():
                        break  # the bus is closing
                    entries, read = read.result(), None
                for entry_id, fields in entries:
                    taken.append(entry_id)  # a message handed over counts as taken on close
                    message = self._decode(entry_id, fields)
                    if message is not None:
                        yield message
                if taken:
                    await self._call("XACK", self._client.xack(self._stream, group, *taken))
                    taken.clear()
        finally:
            closing.cancel()
            if read is not None:
                read.cancel()
            with contextlib.suppress(RedisError, OSError):
                if taken:
                    await self._client.xack(self._stream, group, *taken)
                await self._leave(keys=[self._stream], args=[group, consumer, CLAIM_IDLE_MS])
            left.set()
            self._members.discard(left)

    async def ping(self) -> None:
        await self._call("PING", self._client.ping())

    async def aclose(self) -> None:
        self._closing.set()
        if self._members:
            waits = [asyncio.ensure_future(left.wait()) for left in self._members]
            _, pending = await asyncio.wait(waits, timeout=CLOSE_TIMEOUT_S)
            for wait in pending:
                wait.cancel()
        await self._client.aclose()

    async def _read(self, group: str, consumer: str) -> _Entries:
        try:
            reply = await self._client.xreadgroup(
                group, consumer, {self._stream: ">"}, count=READ_COUNT, block=BLOCK_MS
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise _unavailable("XREADGROUP", self._url, exc) from exc
            # the stream or the group is gone (a restart, a cleanup that took us for dead)
            await self._call("join", self._join(keys=[self._stream], args=[group, consumer]))
            return []
        except (RedisError, OSError) as exc:
            raise _unavailable("XREADGROUP", self._url, exc) from exc
        return list(cast(Any, reply)[0][1]) if reply else []  # RESP2: [[stream, entries]]

    async def _maintain(self, group: str, consumer: str) -> _Entries:
        claimed = await self._call(
            "XAUTOCLAIM",
            self._client.xautoclaim(
                self._stream, group, consumer, CLAIM_IDLE_MS, "0-0", count=READ_COUNT
            ),
        )
        destroyed = await self._call(
            "cleanup", self._cleanup(keys=[self._stream], args=[DEAD_CONSUMER_MS])
        )
        if destroyed:
            log.info("bus: destroyed %s idle consumer groups on %s", destroyed, self._stream)
        return list(claimed[1])  # [next id, claimed entries, deleted ids]

    def _decode(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> BusMessage | None:
        raw = (fields or {}).get(_FIELD.encode())
        try:
            if raw is None:
                raise MalformedMessage(f"no field {_FIELD!r}")
            return decode(raw)
        except MalformedMessage as exc:
            log.warning("bus: skipped entry %s of %s: %s", entry_id, self._stream, exc)
            return None

    async def _call(self, what: str, call: Any) -> Any:
        try:
            return await call
        except (RedisError, OSError) as exc:
            raise _unavailable(what, self._url, exc) from exc
