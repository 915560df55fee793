"""librdkafka's mock Kafka cluster in a helper process, for one test session (or a bench).

``python -m tests.kafka_mock`` creates the mock cluster (``test.mock.num.brokers``: one broker
on a random loopback port, in this process's librdkafka threads), prints the broker address
(``host:port``, from ``list_topics().brokers``) on one stdout line and stays up until killed.
Other processes produce and consume through that address with consumer groups. The mock
auto-creates topics (4 partitions) on first use; it answers no CreateTopics requests, and a
new consumer group's first join waits 3 s (librdkafka's mock initial rebalance delay).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

START_TIMEOUT_S = 30


def serve() -> None:
    from confluent_kafka import Producer

    handle = Producer({"test.mock.num.brokers": 1, "logger": _quiet()})
    brokers = handle.list_topics(timeout=START_TIMEOUT_S).brokers.values()
    print(",".join(f"{b.host}:{b.port}" for b in brokers), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def _quiet() -> object:
    import logging

    logger = logging.getLogger("kafka_mock")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


@dataclass
class KafkaMock:
    process: subprocess.Popen[str]
    brokers: str  # host:port[,host:port]

    def url(self, topic: str | None = None) -> str:
        return f"kafka://{self.brokers}" + (f"?topic={topic}" if topic else "")

    @classmethod
    def start(cls) -> KafkaMock:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kafka_mock"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = _read_line(proc, START_TIMEOUT_S)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return cls(proc, line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The helper's first stdout line (the broker address), or fail after ``timeout_s``."""
    assert proc.stdout is not None
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    line = found[0].strip() if found else ""
    if not line:
        code = proc.poll()
        raise RuntimeError(f"the Kafka mock cluster did not start (exit code {code})")
    return line


if __name__ == "__main__":
    serve()
