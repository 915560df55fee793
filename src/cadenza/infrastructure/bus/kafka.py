"""The event bus on Kafka (``kafka://host:port[,host:port][?topic=name&<librdkafka option>=..]``)
through confluent-kafka's asyncio producer and consumer: one topic, one consumer group per bus
group.

- ``publish``: key = the instance id (a partition per instance: per-instance order), value =
  the orjson message, ``acks=all`` and ``enable.idempotence=true``; returns once every message
  is acknowledged, raises ``BusUnavailable`` if one is not within ``message.timeout.ms``
  (``DELIVERY_TIMEOUT_MS`` unless the URL sets it).
- ``subscribe(group)``: a consumer with ``group.id`` = the group, ``auto.offset.reset=latest``,
  no auto-commit. When partitions are assigned, those the group never committed are pinned to
  their end and that position is committed at once: from its first assignment on, the group
  gets every message, whichever member later takes a partition over. Offsets are committed
  once the consumer took the messages (asynchronously after each batch, synchronously when
  partitions are revoked and when the subscription leaves).
- The topic: if the brokers auto-create topics, the first metadata request creates it with
  the broker's ``num.partitions``; otherwise the bus creates it (AdminClient) with
  ``TOPIC_PARTITIONS`` partitions and the broker's default replication factor.
- Any other query parameter is a librdkafka configuration property given to the producer, the
  consumers and the admin client as is, e.g. for a real cluster over SASL/TLS:
  ``kafka://b1:9093,b2:9093?topic=cadenza.events&security.protocol=SASL_SSL&sasl.mechanisms=
  SCRAM-SHA-512&sasl.username=cadenza&sasl.password=...&ssl.ca.location=/etc/kafka/ca.pem``
  (URL-encode the values). ``url`` shows only the brokers and the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.aio import AIOConsumer, AIOProducer
from confluent_kafka.cimpl import NewTopic

from cadenza.application.ports_bus import BusMessage, BusUnavailable
from cadenza.infrastructure.bus.codec import MalformedMessage, decode, encode

DEFAULT_TOPIC = "cadenza.events"
TOPIC_PARTITIONS = 12  # when the bus creates the topic: up to 12 members of a group share it
DELIVERY_TIMEOUT_MS = 10_000  # message.timeout.ms: publish gives up (BusUnavailable) after this
FETCH_WAIT_MS = 50  # fetch.wait.max.ms: the longest a broker may hold an empty fetch
SESSION_TIMEOUT_MS = 10_000  # a crashed member's partitions move to another after this
OPERATION_TIMEOUT_S = 5.0  # metadata (ping), topic creation, offset look-ups
POLL_S = 0.5  # one poll waits this long for a message (and a closing subscription for it)
READ_COUNT = 100  # messages taken from the consumer's queue at once
CLOSE_TIMEOUT_S = 5.0  # aclose waits this long for subscriptions to leave their groups
_OFFSET_UNSET = 0  # committed offsets below this are not set (OFFSET_INVALID is -1001)

log = logging.getLogger(__name__)


def _unavailable(what: str, url: str, exc: BaseException) -> BusUnavailable:
    return BusUnavailable(f"Kafka bus {url}: {what} failed: {exc}")


class KafkaBus:
    """``EventBus`` over one Kafka topic (see the module doc)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"a Kafka bus URL is kafka://host:port[,host:port] (got {url!r})")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        self._topic = options.pop("topic", DEFAULT_TOPIC)
        if not self._topic:
            raise ValueError("the Kafka bus URL's ?topic= must not be empty")
        self._url = f"kafka://{parts.netloc.rpartition('@')[2]}?topic={self._topic}"
        self._common: dict[str, Any] = {"bootstrap.servers": parts.netloc.rpartition("@")[2]}
        self._options = options
        timeout_ms = int(options.get("message.timeout.ms", DELIVERY_TIMEOUT_MS))
        self._flush_timeout_s = timeout_ms / 1000 + OPERATION_TIMEOUT_S
        self._producer: AIOProducer | None = None
        self._topic_ready = False
        self._lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._members: set[asyncio.Event] = set()  # one per live subscription, set when it left

    @property
    def url(self) -> str:
        return self._url

    @property
    def local(self) -> bool:
        return False

    @property
    def topic(self) -> str:
        return self._topic

    def _config(self, own: dict[str, Any]) -> dict[str, Any]:
        return {**self._common, "logger": log, **own, **self._options}

    async def publish(self, messages: Sequence[BusMessage]) -> None:
        if not messages:
            return
        producer = await self._ready()
        try:
            futures = [
                await producer.produce(self._topic, value=encode(m), key=m.instance_id.encode())
                for m in messages
            ]
            for future in futures:  # a late failure is not left unretrieved
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            await producer.flush(self._flush_timeout_s)
        except KafkaException as exc:
            raise _unavailable("publish", self._url, exc) from exc
        if not all(f.done() for f in futures):
            raise BusUnavailable(f"Kafka bus {self._url}: publish not acknowledged in time")
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            raise _unavailable("publish", self._url, failed)

    async def subscribe(self, group: str) -> AsyncIterator[BusMessage]:
        if self._closing.is_set():
            return
        await self._ready()
        left = asyncio.Event()
        self._members.add(left)
        member = _Member(self._topic, self._url)
        consumer = AIOConsumer(
            self._config(
                {
                    "group.id": group,
                    "auto.offset.reset": "latest",
                    "enable.auto.commit": False,
                    "session.timeout.ms": SESSION_TIMEOUT_MS,
                    "fetch.wait.max.ms": FETCH_WAIT_MS,
                    "error_cb": member.on_error,
                }
            ),
            max_workers=2,  # a rebalance callback calls back into the consumer
        )
        closing = asyncio.ensure_future(self._closing.wait())
        poll: asyncio.Future[list[Message]] | None = None
        try:
            await consumer.subscribe(
                [self._topic], on_assign=member.on_assign, on_revoke=member.on_revoke
            )
            while not self._closing.is_set():
                poll = asyncio.ensure_future(_take(consumer))
                await asyncio.wait({poll, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    break  # the bus is closing
                batch, poll = poll.result(), None
                member.raise_if_failed()
                for record in batch:
                    message = member.decode(record)
                    if message is not None:
                        yield message
                    member.took(record)
                await member.commit(consumer, asynchronous=True)
        except KafkaException as exc:
            raise _unavailable("subscription", self._url, exc) from exc
        finally:
            closing.cancel()
            if poll is not None:
                poll.cancel()
            with contextlib.suppress(KafkaException, RuntimeError):
                await member.commit(consumer, asynchronous=False)
            with contextlib.suppress(KafkaException, RuntimeError):
                await consumer.close()
            left.set()
            self._members.discard(left)

    async def ping(self) -> None:
        producer = await self._ready()
        try:
            await producer.list_topics(self._topic, timeout=OPERATION_TIMEOUT_S)
        except KafkaException as exc:
            raise _unavailable("ping", self._url, exc) from exc

    async def aclose(self) -> None:
        self._closing.set()
        if self._members:
            waits = [asyncio.ensure_future(left.wait()) for left in self._members]
            _, pending = await asyncio.wait(waits, timeout=CLOSE_TIMEOUT_S)
            for wait in pending:
                wait.cancel()
        if self._producer is not None:
            with contextlib.suppress(KafkaException):
                await self._producer.close()
            self._producer = None

    async def _ready(self) -> AIOProducer:
        """The producer, and the topic made sure of (once)."""
        async with self._lock:
            if self._producer is None:
                own = {"acks": "all", "enable.idempotence": True}
                own["message.timeout.ms"] = DELIVERY_TIMEOUT_MS
                self._producer = AIOProducer(self._config(own), buffer_timeout=0)
            if not self._topic_ready:
                await self._ensure_topic(self._producer)
                self._topic_ready = True
            return self._producer

    async def _ensure_topic(self, producer: AIOProducer) -> None:
        try:
            metadata = await producer.list_topics(self._topic, timeout=OPERATION_TIMEOUT_S)
        except KafkaException as exc:
            raise _unavailable("metadata", self._url, exc) from exc
        found = metadata.topics.get(self._topic)
        if found is not None and found.error is None and found.partitions:
            return
        await asyncio.to_thread(self._create_topic)

    def _create_topic(self) -> None:
        admin = AdminClient(self._config({}))
        topic = NewTopic(self._topic, num_partitions=TOPIC_PARTITIONS, replication_factor=-1)
        future = admin.create_topics([topic], request_timeout=OPERATION_TIMEOUT_S)[self._topic]
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise _unavailable(f"creating topic {self._topic}", self._url, exc) from exc


async def _take(consumer: AIOConsumer) -> list[Message]:
    """The next messages: wait up to POLL_S for one, then take what else is already there."""
    first: Message | None = await consumer.poll(POLL_S)
    if first is None:
        return []
    more: list[Message] = await consumer.consume(READ_COUNT - 1, 0)
    return [first, *more]


class _Member:
    """One subscription's consumer-group state: offsets taken, callbacks, a fatal error."""

    def __init__(self, topic: str, url: str) -> None:
        self._topic, self._url = topic, url
        self._taken: dict[int, int] = {}  # partition -> the next offset to commit
        self._failure: BusUnavailable | None = None

    def took(self, record: Message) -> None:
        partition, offset = record.partition(), record.offset()
        if partition is not None and offset is not None:
            self._taken[partition] = offset + 1

    def decode(self, record: Message) -> BusMessage | None:
        error = record.error()
        if error is not None:
            if error.fatal():
                raise _unavailable("consume", self._url, KafkaException(error))
            log.warning("bus: %s: %s", self._url, error)
            return None
        try:
            return decode(record.value() or b"")
        except MalformedMessage as exc:
            log.warning("bus: skipped offset %s of %s: %s", record.offset(), self._topic, exc)
            return None

    async def commit(self, consumer: AIOConsumer, *, asynchronous: bool) -> None:
        if not self._taken:
            return
        offsets = [TopicPartition(self._topic, p, o) for p, o in self._taken.items()]
        self._taken.clear()
        await consumer.commit(offsets=offsets, asynchronous=asynchronous)

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def on_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._failure = _unavailable("consume", self._url, KafkaException(error))

    async def on_assign(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = await consumer.committed(partitions, timeout=OPERATION_TIMEOUT_S)
            pinned = []
            for tp in committed:
                if tp.offset < _OFFSET_UNSET:
                    _, tp.offset = await consumer.get_watermark_offsets(
                        tp, timeout=OPERATION_TIMEOUT_S, cached=False
                    )
                    pinned.append(tp)
            await consumer.assign(committed)
            if pinned:
                await consumer.commit(offsets=pinned, asynchronous=False)
        except KafkaException as exc:
            self._failure = _unavailable("joining the group", self._url, exc)

    async def on_revoke(self, consumer: AIOConsumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        offsets = [
            TopicPartition(self._topic, p, o) for p, o in self._taken.items() if p in revoked
        ]
        for p in revoked:
            self._taken.pop(p, None)
        if offsets:
            try:
                await consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log.warning("bus: %s: commit on revoke failed: %s", self._url, exc)
