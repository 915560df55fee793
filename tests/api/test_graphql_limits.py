"""Security regression tests (issue 9, Low): GraphQL's cost limit (15 aliases once ran 1,035
task queries in one request) and deeply nested request JSON (once a 500)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.api.harness import Server, document, serve
from tests.api.test_graphql import bearer, gql, next_message, publish, socket

from cadenza.interfaces.api.graphql import cost
from cadenza.interfaces.api.graphql.mount import MAX_JSON_DEPTH


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


async def start_instances(srv: Server, count: int) -> None:
    await publish(srv.admin, document())
    for _ in range(count):
        r = await srv.admin.post("/api/v1/processes/instances", {"process_id": "hello"})
        assert r.status in (200, 201, 202), r.body


def aliased(count: int, field: str) -> str:
    return "{" + " ".join(f"a{i}: {field}" for i in range(count)) + "}"


NESTED_TASKS = "instances(limit: 7) { items { id tasks { id } } }"  # 1 + 7 queries


async def test_an_operation_making_too_many_database_queries_is_refused(
    sqlite_url: str,
) -> None:
    async with serve(sqlite_url) as srv:
        await start_instances(srv, 8)
        within = await gql(srv.admin, aliased(12, NESTED_TASKS))  # 12 x 8 = 96 queries
        assert "errors" not in within, within["errors"]
        assert [len(within["data"][f"a{i}"]["items"]) for i in range(12)] == [7] * 12

        over = await gql(srv.admin, aliased(13, NESTED_TASKS))  # 13 x 8 = 104 > 100
        assert over["data"] is None
        assert len(over["errors"]) == 1
        error = over["errors"][0]
        assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "status": 422}
        assert error["message"].startswith(
            f"this operation needs more than {cost.MAX_QUERIES} database queries"
        )


async def test_an_operation_reading_too_many_rows_is_refused(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost, "MAX_ROWS", 20)  # the server runs in this process
    async with serve(sqlite_url) as srv:
        await start_instances(srv, 8)
        page = "instances(limit: 8) { items { id } }"
        assert "errors" not in await gql(srv.admin, aliased(2, page))  # 16 rows
        over = await gql(srv.admin, aliased(3, page))  # 24 rows
        assert over["data"] is None
        assert [e["extensions"]["code"] for e in over["errors"]] == ["QUERY_TOO_COSTLY"]
        assert over["errors"][0]["message"].startswith("this operation reads more than 20 rows")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


START = 'mutation($i: JSON) { startInstance(processId: "hello", inputs: $i) { id } }'


def deep_request(depth: int) -> str:
    """Written by hand: json.dumps itself gives up near 1,000 levels."""
    deep = "[" * depth + "1" + "]" * depth
    return '{"query": ' + json.dumps(START) + ', "variables": {"i": ' + deep + "}}"


async def test_deeply_nested_request_json_is_a_clear_400_not_a_500(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv:
        await publish(srv.admin, document())
        for depth in (MAX_JSON_DEPTH, 1000, 100_000):
            r = await srv.admin.request(
                "POST",
                "/graphql",
                data=deep_request(depth).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert (r.status, r.body) == (400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        # just within the limit, the request runs (and the inputs are judged by the process)
        fits = {"query": START, "variables": {"i": {"x": nested(MAX_JSON_DEPTH - 3)}}}
        r = await srv.admin.post("/graphql", fits)
        assert r.status == 200, r.body
        variables = '{"i": ' + "[" * 1000 + "]" * 1000 + "}"
        r = await srv.admin.get("/graphql", params={"query": START, "variables": variables})
        assert r.status == 400


async def test_a_socket_sending_deeply_nested_json_is_closed(sqlite_url: str) -> None:
    async with serve(sqlite_url) as srv, socket(srv, bearer(srv.admin)) as ws:
        assert (await next_message(ws))["type"] == "connection_ack"
        await ws.send_str('{"id": "1", "type": "subscribe", "payload": ' + deep_request(1000) + "}")
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 4400
