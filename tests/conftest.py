"""Shared fixtures: throwaway PostgreSQL and MariaDB servers per session and databases for
engine tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.kafka_mock import KafkaMock
from tests.mariadb import MariadbServer, MariadbUnavailable
from tests.mariadb import create_database as create_mariadb_database
from tests.pg import BACKENDS, PostgresServer, PostgresUnavailable, backend_url, create_database
from tests.redis_server import RedisServer, RedisUnavailable


def pytest_configure(config: pytest.Config) -> None:
    # Every Settings() the tests build (and every server they spawn) hashes passwords with
    # scrypt N=2^10 instead of the default 2^17 (128 MiB, ~0.3 s a hash): the suite creates
    # hundreds of users. tests/unit/test_passwords.py checks the default on its own.
    os.environ.setdefault("CADENZA_PASSWORD_HASH_N", "1024")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if "mariadb_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mariadb)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server started for this test session; the URL of its ``cadenza_test``."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (a skipped integration test in CI is a failure)")
        pytest.skip(str(exc))
    try:
        yield create_database(server.url("postgres"), "cadenza_test")
    finally:
        server.stop()


@pytest.fixture
def pg_database_url(postgres_url: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return create_database(postgres_url)


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A MariaDB server started for this test session; the URL of its ``cadenza_test``."""
    try:
        server = MariadbServer.start()
    except MariadbUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (a skipped integration test in CI is a failure)")
        pytest.skip(str(exc))
    try:
        yield create_mariadb_database(server.url(""), "cadenza_test")
    finally:
        server.stop()


@pytest.fixture
def mariadb_database_url(mariadb_url: str) -> str:
    """A fresh, empty MariaDB database for one test."""
    return create_mariadb_database(mariadb_url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: a SQLite file, a PostgreSQL, a MariaDB database."""
    return backend_url(request, tmp_path)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server started for this test session (no persistence); the URL of its db 0."""
    try:
        server = RedisServer.start()
    except RedisUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (a skipped integration test in CI is a failure)")
        pytest.skip(str(exc))
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture
def redis_bus_url(redis_url: str) -> str:
    """A Redis Streams bus URL on the session's Redis, with a stream of this test's own."""
    return f"{redis_url}?stream=test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def kafka_mock() -> Iterator[KafkaMock]:
    """librdkafka's mock Kafka cluster in a helper process started for this test session."""
    mock = KafkaMock.start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def kafka_url(kafka_mock: KafkaMock) -> str:
    """A Kafka bus URL on the session's mock cluster, with a topic of this test's own."""
    return kafka_mock.url(topic=f"test-{uuid.uuid4().hex}")
