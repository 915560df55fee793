"""The bus adapters without a server: URLs, the wire codec, the choice by scheme."""

from __future__ import annotations

import sys

import orjson
import pytest

from cadenza.application.ports_bus import BusMessage
from cadenza.bootstrap.bus import open_bus
from cadenza.infrastructure.bus.codec import MalformedMessage, decode, encode
from cadenza.infrastructure.bus.kafka import KafkaBus
from cadenza.infrastructure.bus.memory import MemoryBus
from cadenza.infrastructure.bus.redis_streams import RedisStreamsBus
from cadenza.settings import Settings


def test_a_message_survives_the_wire() -> None:
    sent = BusMessage("TaskCompleted", "inst-1", "ws-1", 42, 1.5, {"node": "a", "n": [1, 2]})
    assert decode(encode(sent)) == sent


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (orjson.dumps({"type": "T", "instance_id": "i", "workspace_id": 1, "seq": 1}), "strings"),
        (orjson.dumps({"type": "T", "instance_id": "i", "workspace_id": "w", "seq": "1"}), "seq"),
        (orjson.dumps({"type": "T", "instance_id": "i", "workspace_id": "w", "seq": True}), "seq"),
        (
            orjson.dumps(
                {"type": "T", "instance_id": "i", "workspace_id": "w", "seq": 1, "data": 1}
            ),
            "data",
        ),
    ],
)
def test_a_malformed_message_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode(raw)


def test_the_redis_bus_url_shows_host_db_and_stream_but_no_credentials() -> None:
    bus = RedisStreamsBus("rediss://user:s3cret@cache.internal:6380/2?stream=ev&ssl_cert_reqs=none")
    assert bus.url == "rediss://cache.internal:6380/2?stream=ev"
    assert bus.stream == "ev"
    assert RedisStreamsBus("redis://localhost").url == (
        "redis://localhost:6379/0?stream=cadenza:events"
    )


def test_the_kafka_bus_url_shows_brokers_and_topic_but_no_options() -> None:
    bus = KafkaBus(
        "kafka://b1:9093,b2:9093?topic=ev&security.protocol=SASL_SSL&sasl.password=s3cret"
    )
    assert bus.url == "kafka://b1:9093,b2:9093?topic=ev"
    assert bus.topic == "ev"
    assert KafkaBus("kafka://b1:9092").url == "kafka://b1:9092?topic=cadenza.events"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis://localhost/0?stream=", "stream= must not be empty"),
        ("kafka://b1:9092?topic=", "topic= must not be empty"),
        ("kafka://", "kafka://host:port"),
    ],
)
def test_a_bus_url_without_a_stream_or_topic_is_refused(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        open_bus(Settings(bus_url=url))


def test_the_bus_is_chosen_by_scheme() -> None:
    assert isinstance(open_bus(Settings()), MemoryBus)
    assert isinstance(open_bus(Settings(bus_url="redis://localhost:6379/0")), RedisStreamsBus)
    assert isinstance(open_bus(Settings(bus_url="rediss://localhost:6379/0")), RedisStreamsBus)
    assert isinstance(open_bus(Settings(bus_url="kafka://localhost:9092")), KafkaBus)


def test_opening_the_bus_module_imports_no_adapter() -> None:
    import subprocess

    probe = (
        "import sys, cadenza.bootstrap.bus as b; from cadenza.settings import Settings; "
        "b.open_bus(Settings()); "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('confluent_kafka', 'cadenza.infrastructure.bus.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['cadenza.infrastructure.bus.memory']"
