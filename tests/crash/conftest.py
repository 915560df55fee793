"""The crash tests' shared fixture: a fork server per test, from which workers are forked
already warm (tests/crash/forkserver.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.crash.forkserver import ForkServer


@pytest.fixture
async def fork() -> AsyncIterator[ForkServer]:
    async with await ForkServer.start() as server:
        yield server
