"""Workspace quotas over the real API: who sets and reads them, starts refused past the
running and per-minute limits (exact problem bodies, a fake clock for the minute), two API
processes on one database sharing the counts, and model turns that would cross a token
budget never reaching the model (a local OpenAI-compatible server records every request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from tests.api.fixtures import approval_document, eventually, ok, settled
from tests.api.harness import Client, Server, document, serve
from tests.fakes.openai_server import FakeOpenAIServer

from cadenza.application.quotas import Quotas
from cadenza.settings import ProviderSettings

WS = "default"
NOON = 1_764_676_800.0  # 2025-12-02T12:00:00Z, the start of a minute
PASSWORD = "quota-test-password"
LIMITS = (
    "max_running",
    "starts_per_minute",
    "tokens_per_day",
    "tokens_per_month",
    "cost_per_day",
    "cost_per_month",
)
UNLIMITED = dict.fromkeys(LIMITS)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def quotas_of(srv: Server) -> Quotas:
    found = srv.runtime.quotas
    assert found is not None
    return found


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[Server]:
    async with serve(f"sqlite:///{tmp_path}/q.db") as s:
        yield s


async def publish(c: Client, doc: dict[str, Any]) -> None:
    ok(await c.post("/api/v1/processes/definitions", {"document": doc, "publish": True}), 201)


async def start(c: Client, process_id: str) -> Any:
    return await c.post("/api/v1/processes/instances", {"process_id": process_id})


async def member(srv: Server, workspace: str, name: str, role: str) -> Client:
    user = ok(await srv.admin.post("/api/v1/users", {"username": name, "password": PASSWORD}), 201)
    path = f"/api/v1/workspaces/{workspace}/members/{user['id']}"
    ok(await srv.admin.request("PUT", path, {"role": role}))
    c = await srv.anonymous.as_(None, workspace).login(name, PASSWORD)
    return c.as_(c.token, workspace)


async def set_quotas(c: Client, workspace: str = WS, **limits: Any) -> Any:
    return await c.request("PUT", f"/api/v1/workspaces/{workspace}/quotas", limits)


# ---- setting and reading ----------------------------------------------------------------------
async def test_system_admins_set_quotas_and_workspace_members_read_them(srv: Server) -> None:
    team = ok(await srv.admin.post("/api/v1/workspaces", {"name": "team-q"}), 201)["id"]
    viewer = await member(srv, team, "q-viewer", "viewer")
    ws_admin = await member(srv, team, "q-admin", "admin")
    outsider = await member(srv, WS, "q-outsider", "admin")
    fresh = ok(await viewer.get(f"/api/v1/workspaces/{team}/quotas"))
    assert fresh == {"workspace_id": team, "own": UNLIMITED, "effective": UNLIMITED}

    put = ok(await set_quotas(srv.admin, team, max_running=3, cost_per_month=2.5))
    own = {**UNLIMITED, "max_running": 3, "cost_per_month": 2.5}
    assert put == {"workspace_id": team, "own": own, "effective": own}
    assert ok(await viewer.get(f"/api/v1/workspaces/{team}/quotas")) == put

    denied = await set_quotas(ws_admin, team, max_running=100)
    assert (denied.status, denied.headers["Content-Type"]) == (403, "application/problem+json")
    hidden = await outsider.get(f"/api/v1/workspaces/{team}/usage")
    assert hidden.status == 404, hidden.body
    invalid = await set_quotas(srv.admin, team, max_running=-1)
    assert invalid.status == 422, invalid.body
    unknown = await set_quotas(srv.admin, team, max_runing=1)
    assert unknown.status == 422, unknown.body
    assert ok(await viewer.get(f"/api/v1/workspaces/{team}/quotas")) == put


async def test_usage_shows_running_starts_and_spend_against_the_limits(srv: Server) -> None:
    quotas = quotas_of(srv)
    quotas.clock = FakeClock(NOON + 5)
    await publish(srv.admin, approval_document("held"))
    ok(await set_quotas(srv.admin, starts_per_minute=10, tokens_per_day=5000))
    ok(await start(srv.admin, "held"), 201)
    usage = ok(await srv.admin.get(f"/api/v1/workspaces/{WS}/usage"))
    assert usage == {
        "workspace_id": WS,
        "limits": {**UNLIMITED, "starts_per_minute": 10, "tokens_per_day": 5000},
        "running": 1,
        "starts_this_minute": 1,
        "today": {"period": "2025-12-02", "tokens": 0, "cost": 0.0},
        "this_month": {"period": "2025-12", "tokens": 0, "cost": 0.0},
    }


# ---- starts ---------------------------------------------------------------------------------
async def test_a_start_past_the_running_limit_is_refused_with_429(srv: Server) -> None:
    await publish(srv.admin, approval_document("held"))
    ok(await set_quotas(srv.admin, max_running=2))
    for _ in range(2):
        ok(await start(srv.admin, "held"), 201)
    refused = await start(srv.admin, "held")
    assert refused.status == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "Retry-After" not in refused.headers
    assert refused.body == {
        "type": "about:blank",
        "title": "Quota exceeded",
        "status": 429,
        "detail": "quota exceeded: workspace 'default' has 2 instance(s) running; its limit "
        "(max_running) is 2",
    }
    listed = ok(await srv.admin.get("/api/v1/processes/instances"))
    assert len(listed["items"]) == 2
    metrics = ok(await srv.admin.get("/metrics"))
    assert 'cadenza_quota_refusals_total{kind="running"} 1.0' in metrics


async def test_a_start_past_the_minute_limit_is_refused_until_the_next_minute(
    srv: Server,
) -> None:
    clock = FakeClock(NOON + 15)
    quotas_of(srv).clock = clock
    await publish(srv.admin, document("hello"))
    ok(await set_quotas(srv.admin, starts_per_minute=2))
    for _ in range(2):
        ok(await start(srv.admin, "hello"), 201)
    refused = await start(srv.admin, "hello")
    assert (refused.status, refused.headers["Retry-After"]) == (429, "45")
    assert refused.body == {
        "type": "about:blank",
        "title": "Quota exceeded",
        "status": 429,
        "detail": "quota exceeded: workspace 'default' started 2 instance(s) this minute; its "
        "limit (starts_per_minute) is 2; retry in 45 s",
    }
    clock.t = NOON + 60
    ok(await start(srv.admin, "hello"), 201)
    metrics = ok(await srv.admin.get("/metrics"))
    assert 'cadenza_quota_refusals_total{kind="starts"} 1.0' in metrics


async def test_a_repeated_idempotency_key_is_not_a_new_start(srv: Server) -> None:
    """A retry of a start that got through answers the earlier instance, at the limit too,
    and takes no second place in the minute's count or the audit log."""
    quotas_of(srv).clock = FakeClock(NOON + 15)
    await publish(srv.admin, document("hello"))
    ok(await set_quotas(srv.admin, starts_per_minute=1))
    body = {"process_id": "hello", "idempotency_key": "order-17"}
    first = ok(await srv.admin.post("/api/v1/processes/instances", body), 201)
    for _ in range(2):
        again = ok(await srv.admin.post("/api/v1/processes/instances", body), 201)
        assert again["id"] == first["id"]
    refused = await start(srv.admin, "hello")  # a new start still meets the limit
    assert refused.status == 429
    assert (await quotas_of(srv).usage(WS)).starts_this_minute == 1
    params = {"action": "instance.start", "limit": "10"}
    audit = ok(await srv.admin.get("/api/v1/audit", params=params))
    assert [e["target_id"] for e in audit["items"]] == [first["id"]]


async def test_two_api_processes_on_one_database_share_the_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    async with serve(url) as one, serve(url) as two:
        for s in (one, two):
            quotas_of(s).clock = FakeClock(NOON)
        await publish(one.admin, approval_document("held"))
        ok(await set_quotas(one.admin, max_running=1, starts_per_minute=3))
        assert ok(await two.admin.get(f"/api/v1/workspaces/{WS}/quotas"))["own"]["max_running"] == 1
        ok(await start(one.admin, "held"), 201)
        refused = await start(two.admin, "held")
        assert (refused.status, refused.body["detail"]) == (
            429,
            "quota exceeded: workspace 'default' has 1 instance(s) running; its limit "
            "(max_running) is 1",
        )
        ok(await set_quotas(two.admin, starts_per_minute=3))  # no running limit now
        ok(await start(two.admin, "held"), 201)
        # the memory bus reaches no other process: `one` applies the change once its cached
        # limits are older than the TTL (a Redis/Kafka bus: at once, see below)
        quotas_of(one).clock = FakeClock(NOON + quotas_of(one).cache.ttl_s)
        ok(await start(one.admin, "held"), 201)
        late = await start(two.admin, "held")  # the minute's 4th start, counted in one store
        assert (late.status, late.headers["Retry-After"]) == (429, "60")
        usage = ok(await one.admin.get(f"/api/v1/workspaces/{WS}/usage"))
        assert (usage["running"], usage["starts_this_minute"]) == (3, 3)


async def test_a_limit_set_on_one_process_is_enforced_on_another_through_the_bus(
    tmp_path: Path, redis_bus_url: str
) -> None:
    """With a Redis bus the change reaches the other process's cache at once: its TTL here
    (an hour) cannot be what made it apply."""
    url = f"sqlite:///{tmp_path}/bus.db"
    settings: dict[str, Any] = {"bus_url": redis_bus_url, "quota_limits_ttl_s": 3600.0}
    async with serve(url, **settings) as one, serve(url, **settings) as two:
        await publish(one.admin, approval_document("held"))
        ok(await start(two.admin, "held"), 201)  # `two` caches "no limit"
        assert (await quotas_of(two).limits(WS)).starts_per_minute is None

        async def applied_on_two() -> bool:
            # set again until `two`'s follower, which joins the bus as it starts, has seen it
            ok(await set_quotas(one.admin, starts_per_minute=0))
            return (await quotas_of(two).limits(WS)).starts_per_minute == 0

        await eventually(applied_on_two, "the limit to reach process two")
        refused = await start(two.admin, "held")
        assert refused.status == 429, refused.body
        assert "starts_per_minute" in refused.body["detail"]


async def test_concurrent_starts_on_two_api_processes_never_pass_the_running_limit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    async with serve(url) as one, serve(url) as two:
        await publish(one.admin, approval_document("held"))
        ok(await set_quotas(one.admin, max_running=3))
        replies = await asyncio.gather(*[start(s.admin, "held") for s in [one, two] * 5])
        assert sorted(r.status for r in replies) == [201] * 3 + [429] * 7
        usage = ok(await two.admin.get(f"/api/v1/workspaces/{WS}/usage"))
        assert usage["running"] == 3


# ---- model turns ----------------------------------------------------------------------------
def llm_document(process_id: str, max_tokens: int) -> dict[str, Any]:
    node = {"id": "say", "type": "llm", "config": {"prompt": "hello", "max_tokens": max_tokens}}
    return {"schema": "cadenza/v1", "id": process_id, "name": "llm", "nodes": [node]}


def agent_document(process_id: str) -> dict[str, Any]:
    node = {"id": "think", "type": "agent", "config": {"instructions": "be brief"}}
    return {"schema": "cadenza/v1", "id": process_id, "name": "agent", "nodes": [node]}


def node_task(instance: dict[str, Any], node_id: str) -> dict[str, Any]:
    [task] = [t for t in instance["tasks"] if t["node_id"] == node_id]
    return dict(task)


def chats(model: FakeOpenAIServer) -> int:
    return sum(r.path.endswith("/chat/completions") for r in model.requests)


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as m:
        yield m


def with_model(model: FakeOpenAIServer) -> dict[str, Any]:
    provider = ProviderSettings(name="local", base_url=model.base_url, default_model="m")
    return {"providers": [provider], "default_provider": "local"}


async def test_a_turn_that_would_cross_the_token_budget_is_never_sent(
    tmp_path: Path, model: FakeOpenAIServer
) -> None:
    async with serve(f"sqlite:///{tmp_path}/m.db", **with_model(model)) as srv:
        await publish(srv.admin, llm_document("small", 10))
        await publish(srv.admin, llm_document("big", 500))
        await publish(srv.admin, agent_document("agent"))
        ok(await set_quotas(srv.admin, tokens_per_day=100))
        done = await settled(srv.admin, ok(await start(srv.admin, "small"), 201)["id"], "completed")
        spent = node_task(done, "say")["usage"]
        used = spent["prompt_tokens"] + spent["completion_tokens"]
        assert chats(model) == 1
        usage = ok(await srv.admin.get(f"/api/v1/workspaces/{WS}/usage"))
        assert usage["today"]["tokens"] == usage["this_month"]["tokens"] == used

        for process_id, reserved in (("big", 500), ("agent", 1024)):  # agent: reserve setting
            iid = ok(await start(srv.admin, process_id), 201)["id"]
            failed = await settled(srv.admin, iid, "failed")
            detail = (
                f"quota exceeded: workspace 'default' has used {used} of its tokens_per_day "
                f"limit 100; this model turn reserves up to {reserved} more, so it was not "
                "started"
            )
            node = "think" if process_id == "agent" else "say"
            task = node_task(failed, node)
            assert (task["status"], task["error"], task["attempt"]) == ("failed", detail, 1)
        assert chats(model) == 1  # neither refused turn reached the model
        metrics = ok(await srv.admin.get("/metrics"))
        assert 'cadenza_quota_refusals_total{kind="tokens"} 2.0' in metrics
        after = ok(await srv.admin.get(f"/api/v1/workspaces/{WS}/usage"))
        assert after["today"]["tokens"] == used  # refused reservations hold nothing


async def test_usage_of_turns_on_two_workers_adds_up_in_the_store(
    tmp_path: Path, model: FakeOpenAIServer
) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    async with serve(url, **with_model(model)) as one, serve(url, **with_model(model)) as two:
        await publish(one.admin, llm_document("say", 10))
        ids = [ok(await start(c.admin, "say"), 201)["id"] for c in (one, two, one, two)]
        total = 0
        for iid in ids:
            task = node_task(await settled(one.admin, iid, "completed"), "say")
            total += task["usage"]["prompt_tokens"] + task["usage"]["completion_tokens"]
        assert chats(model) == 4

        async def adds_up(s: Server) -> bool:
            # without a budget each process writes its turns' usage every quota_usage_flush_s
            usage = ok(await s.admin.get(f"/api/v1/workspaces/{WS}/usage"))
            return bool(usage["today"]["tokens"] == usage["this_month"]["tokens"] == total)

        for s in (one, two):
            await eventually(partial(adds_up, s), "the usage of both processes written")
