"""A native rehearsal of deploy/compose/compose.yaml: its Cadenza services, as many processes
as its replicas, started in its depends_on order with its commands and environment, on
loopback against MariaDB (for MySQL 8), Redis and a mock Kafka (tests/deploy/rehearsal.py);
then one example run end to end through API 1 while API 2 streams its events, and a clean
stop (SIGTERM, exit 0 everywhere). A change to the Compose topology changes what runs here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.api.harness import Client
from tests.deploy.compose_model import ROOT, filled_env, interpolate_tree, load
from tests.deploy.rehearsal import Process, Rehearsal, StandIns
from tests.deploy.rehearsal_proxy import LoopbackProxy, find_haproxy
from tests.kafka_mock import KafkaMock

FINISH_TIMEOUT_S = 60.0
LEADER_TIMEOUT_S = 30.0  # > CADENZA_LEADER_LEASE_S's first attempt; an upper bound
TERMINAL = ("InstanceCompleted", "InstanceFailed", "InstanceCancelled")
ORDERS = [
    {"id": 1, "qty": 2, "price": 30},
    {"id": 2, "qty": 1, "price": 200},
    {"id": 3, "qty": 5, "price": 10},
]


async def stream_until_terminal(
    session: aiohttp.ClientSession, base: str, token: str, opened: asyncio.Event, iid: list[str]
) -> list[tuple[int, str]]:
    """Read the event stream at ``base`` from the moment it opens (``opened`` is set then) until
    the terminal event of the instance whose id is put in ``iid``; its (seq, type) in order."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(total=FINISH_TIMEOUT_S, sock_connect=10)
    seen: list[tuple[int, str, str]] = []
    async with session.get(base + "/api/v1/events/stream", headers=headers, timeout=timeout) as r:
        assert r.status == 200, await r.text()
        opened.set()
        data: list[str] = []
        async for raw in r.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                body = json.loads("\n".join(data))
                data = []
                if isinstance(body, dict) and "instance_id" in body:
                    seen.append((int(body["seq"]), str(body["type"]), str(body["instance_id"])))
                    if iid and body["instance_id"] == iid[0] and body["type"] in TERMINAL:
                        break
    return [(seq, kind) for seq, kind, i in seen if i == iid[0]]


async def completed(session: aiohttp.ClientSession, p: Process, token: str) -> dict[str, float]:
    """Completed ``task_executions_total`` by node type, scraped as Prometheus does (with the
    bearer token)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(p.url + "/metrics", headers=headers) as r:
        assert r.status == 200, (p.name, r.status)
        text = await r.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "task_executions_total" and sample.labels["status"] == "completed":
                kind = sample.labels["node_type"]
                out[kind] = out.get(kind, 0.0) + sample.value
    return out


async def leaders(session: aiohttp.ClientSession, agents: list[Process]) -> list[str]:
    found = []
    for p in agents:
        async with session.get(p.url + "/health/readiness") as r:
            body: dict[str, Any] = await r.json()
            if body.get("leader") is True:
                found.append(p.name)
    return found


async def run_watched(admin: Client, bases: list[str]) -> tuple[str, list[list[tuple[int, str]]]]:
    """Start process-orders through ``admin`` once a stream is open at each of ``bases``; the
    instance id and what each stream delivered for it, up to its terminal event."""
    assert admin.token is not None
    opened = [asyncio.Event() for _ in bases]
    iid: list[str] = []
    streams = [
        asyncio.create_task(stream_until_terminal(admin.session, b, admin.token, o, iid))
        for b, o in zip(bases, opened, strict=True)
    ]
    try:
        for stream, o in zip(streams, opened, strict=True):
            await asyncio.wait(
                {stream, asyncio.create_task(o.wait())}, return_when="FIRST_COMPLETED"
            )
            assert o.is_set(), stream.result()
        started = await admin.post(
            "/api/v1/processes/instances",
            {"process_id": "process-orders", "inputs": {"orders": ORDERS}},
        )
        assert started.status in (200, 201), started.body
        iid.append(str(started.body["id"]))
        seen = await asyncio.wait_for(asyncio.gather(*streams), FINISH_TIMEOUT_S)
    finally:
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return iid[0], list(seen)


async def check_forwarded_client(proxy_url: str, redis_url: str, env: dict[str, str]) -> None:
    """A sign-in through HAProxy from a loopback address of its own, with a spoofed
    X-Forwarded-For, is counted (login limit, in Redis) under the address HAProxy saw: the
    APIs believe HAProxy's header (CADENZA_TRUSTED_PROXIES) and only the part it added."""
    n = uuid.uuid4().int
    source = f"127.{n >> 16 & 255}.{n >> 8 & 255}.{2 + n % 250}"  # not 127.0.0.1: the proxy's
    spoofed = "203.0.113.77"
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as own:
        reply = await Client(proxy_url, own).post(
            "/api/v1/auth/login",
            {"username": "admin", "password": env["CADENZA_ADMIN_PASSWORD"]},
            headers={"X-Forwarded-For": spoofed},
        )
    assert reply.status == 200, reply.body
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = await client.keys("cadenza-limits:*/login/*")
    finally:
        await client.aclose()
    counted = [k.decode() if isinstance(k, bytes) else k for k in keys]
    assert [k for k in counted if f"/login/{source}/" in k], counted
    assert not [k for k in counted if spoofed in k], counted


async def test_the_compose_topology_runs_an_example_end_to_end_and_stops_cleanly(
    mariadb_database_url: str, redis_url: str, kafka_mock: KafkaMock, tmp_path: Path
) -> None:
    doc = load()
    env_file = filled_env(doc)
    resolved = interpolate_tree(doc, env_file)
    stand_ins = StandIns(
        database_url=mariadb_database_url,
        redis_url=redis_url,
        kafka_brokers=kafka_mock.brokers,
        kafka_topic=f"rehearsal-{uuid.uuid4().hex}",
    )
    rehearsal = Rehearsal(resolved, stand_ins, tmp_path)
    haproxy = find_haproxy()  # the proxy runs too where haproxy is installed (always on CI)
    print("rehearsing", {p.name: p.argv[3:] for p in rehearsal.processes.values()})
    async with rehearsal as r:
        session = r.session
        # what runs is what compose.yaml says, wave by wave
        # (both APIs at once on the empty database: one creates the first admin, the other
        # reads it back)
        assert [[s.name for s in wave] for wave in r.waves] == [
            ["migrate"],
            [
                "cadenza-api-1",
                "cadenza-api-2",
                "cadenza-worker",
                "cadenza-agents",
                "cadenza-mcp-proxy",
            ],
        ]
        api1, api2 = r.members("serve")
        workers, agents = r.members("worker"), r.members("agents")
        assert (len(workers), len(agents)) == (2, 2)
        for p in r.servers():  # liveness too, not only the healthcheck's readiness
            async with session.get(p.url + "/health") as resp:
                assert resp.status == 200, p.name

        # one agents process leads, the other stands by
        deadline = time.monotonic() + LEADER_TIMEOUT_S
        while len(lead := await leaders(session, agents)) != 1:
            assert len(lead) == 0, lead
            assert time.monotonic() < deadline, "no agents process leads"
            await asyncio.sleep(0.1)

        # the first admin from CADENZA_ADMIN_PASSWORD, signed in on API 1
        anonymous = Client(api1.url, session)
        admin = await anonymous.login("admin", env_file["CADENZA_ADMIN_PASSWORD"])
        assert admin.token is not None
        for name in ("enrich-child.yaml", "orders.yaml"):
            document = yaml.safe_load((ROOT / "examples" / name).read_text())
            reply = await admin.post(
                "/api/v1/processes/definitions", {"document": document, "publish": True}
            )
            assert reply.status in (200, 201), reply.body

        # API 2 streams (the shared token secret accepts API 1's token), and HAProxy (the
        # Compose file's config) streams from either API, while API 1 starts the instance
        async with contextlib.AsyncExitStack() as stack:
            bases = [api2.url]
            if haproxy is not None:
                proxy = await stack.enter_async_context(
                    LoopbackProxy(resolved, r, haproxy, tmp_path)
                )
                bases.append(proxy.url)
            iid, streams = await run_watched(admin, bases)
            if haproxy is not None:
                await check_forwarded_client(proxy.url, redis_url, env_file)
        if haproxy is not None:
            assert proxy.exit_code == 0, proxy.log.read_text()
        instance = await admin.get(f"/api/v1/processes/instances/{iid}")
        assert instance.body["status"] == "completed", instance.body
        assert instance.body["outputs"] == {
            "orders": [
                {"id": 1, "total": 60, "vip": False},
                {"id": 2, "total": 200, "vip": True},
                {"id": 3, "total": 50, "vip": False},
            ],
            "vip_count": 1,
        }
        journal = await admin.get(f"/api/v1/processes/instances/{iid}/events")
        assert streams == [[(e["seq"], e["type"]) for e in journal.body]] * len(bases)

        # every node of the 4 instances (the parent, 3 subprocesses) once, summed over the
        # processes; the task nodes on the workers (an API claims no task; it may compute
        # start/end and pure nodes inline and fire timers); /metrics takes the token everywhere
        token = env_file["CADENZA_METRICS_TOKEN"]
        by_worker = [await completed(session, p, token) for p in workers]
        by_api = [await completed(session, p, token) for p in (api1, api2)]
        total: Counter[str] = Counter()
        for m in [*by_worker, *by_api]:
            total.update(m)
        assert total == {
            "start": 10, "end": 10, "transform": 6, "wait": 3, "subprocess": 3, "map": 1, "loop": 1
        }  # fmt: skip
        on_workers: Counter[str] = Counter()
        for m in by_worker:
            on_workers.update(m)
        assert [on_workers[k] for k in ("subprocess", "map", "loop")] == [3, 1, 1]
        for p in [*agents, *r.members("mcp-proxy")]:
            async with session.get(
                p.url + "/metrics", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200, p.name

    assert r.exits == dict.fromkeys(r.processes, 0)
    # nothing written to the working or home directory (the rehearsal's root): the containers'
    # root file system is read-only (only /tmp is writable)
    ours = {"logs", "haproxy.cfg"} if haproxy is not None else {"logs"}
    assert {p.name for p in tmp_path.iterdir()} == ours
