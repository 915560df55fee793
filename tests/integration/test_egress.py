"""The egress guard and the http node against a real aiohttp server on 127.0.0.1.

Every outbound connection made by these tests is checked by ``loopback_only``: a connection to
anything but a loopback address fails the test instead of leaving the machine.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from cadenza.application.nodes.http import HttpExecutor
from cadenza.application.ports import EgressDenied, HttpRequest, TemplateError
from cadenza.application.ports_nodes import NodeCall, NodeFailure
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON
from cadenza.infrastructure.egress import Egress, EgressPolicy

LOOPBACK = frozenset({"127.0.0.1", "127.0.0.2", "::1"})
TEST_POLICY = EgressPolicy(allowed_hosts=frozenset({"127.0.0.1"}))


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and record) any connection attempt that would leave the loopback interface."""
    attempted: list[str] = []
    original = asyncio.selector_events.BaseSelectorEventLoop.sock_connect

    async def guarded(self: Any, sock: socket.socket, address: Any) -> None:
        if address[0] not in LOOPBACK:
            attempted.append(address[0])
            raise ConnectionRefusedError(f"test network guard: {address[0]} is not loopback")
        await original(self, sock, address)

    monkeypatch.setattr(asyncio.selector_events.BaseSelectorEventLoop, "sock_connect", guarded)
    yield attempted
    assert attempted == [], f"tried to connect to non-loopback addresses: {attempted}"


@dataclass
class Server:
    base: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


async def _start(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _app(seen: list[dict[str, Any]], release: asyncio.Event) -> web.Application:
    async def record(request: web.Request) -> None:
        seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "host": request.host,
                "headers": dict(request.headers),
                "body": (await request.read()).decode(),
            }
        )

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response(seen[-1])

    async def text(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="plain text", headers={"X-Custom": "yes"})

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query["to"]})

    async def chain(request: web.Request) -> web.Response:
        await record(request)
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(text="done")
        return web.Response(status=302, headers={"Location": f"/chain/{left - 1}"})

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        size = int(request.query["size"])
        if "stream" not in request.query:
            return web.Response(body=b"x" * size)
        response = web.StreamResponse()  # chunked: no Content-Length to check up front
        await response.prepare(request)
        for _ in range(size // 1024):
            await response.write(b"x" * 1024)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await release.wait()
        return web.Response(text="late")

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="server says no")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/text", text)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/chain/{n}", chain)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_route("*", "/status/{code}", status)
    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    seen: list[dict[str, Any]] = []
    release = asyncio.Event()
    runner = await _start(_app(seen, release), "127.0.0.1", 0)
    port = runner.addresses[0][1]
    yield Server(f"http://127.0.0.1:{port}", port, seen)
    release.set()
    await runner.cleanup()


@pytest.fixture
async def egress() -> AsyncIterator[Egress]:
    client = Egress(TEST_POLICY)
    yield client
    await client.aclose()


async def _get(client: Egress, url: str, **kwargs: Any) -> Any:
    return await client.send(HttpRequest("GET", url, **kwargs))


# ---- destinations ----------------------------------------------------------------------------
REFUSED = [
    "http://127.0.0.1:9/",
    "http://localhost:9/",  # a name: refused by the resolver, after the lookup
    "http://[::1]:9/",
    "http://[::ffff:127.0.0.1]:9/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.1.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://2130706433/",  # 127.0.0.1 in a legacy numeric form
]


@pytest.mark.parametrize("url", REFUSED)
async def test_private_destinations_are_refused_by_default(url: str) -> None:
    client = Egress()
    try:
        with pytest.raises(EgressDenied):
            await _get(client, url)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
    ],
)
async def test_metadata_is_refused_even_when_private_is_allowed(url: str) -> None:
    client = Egress(EgressPolicy(allow_private=True, allowed_hosts=frozenset({"169.254.0.0/16"})))
    try:
        with pytest.raises(EgressDenied, match="metadata"):
            await _get(client, url)
    finally:
        await client.aclose()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/"])
async def test_unsupported_schemes_are_refused(egress: Egress, url: str) -> None:
    with pytest.raises(EgressDenied, match="scheme"):
        await _get(egress, url)


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ({"127.0.0.1"}, "127.0.0.1"),
        ({"127.0.0.0/8"}, "127.0.0.1"),
        ({"127.0.0.1"}, "localhost"),  # the name resolves to an admitted address
        ({"localhost"}, "localhost"),  # the name itself is admitted
    ],
)
async def test_allowed_hosts_admit_the_test_server(
    server: Server, allowed: set[str], host: str
) -> None:
    client = Egress(EgressPolicy(allowed_hosts=frozenset(allowed)))
    try:
        response = await _get(client, server.url("/echo", host))
    finally:
        await client.aclose()
    assert response.status == 200
    assert len(server.seen) == 1


async def test_allow_private_admits_loopback(server: Server) -> None:
    client = Egress(EgressPolicy(allow_private=True))
    try:
        assert (await _get(client, server.url("/text"))).body == b"plain text"
    finally:
        await client.aclose()


class FakeDns(AbstractResolver):
    """Answers chosen names with chosen addresses, like a rebinding attacker's DNS."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.answers[host]
        ]

    async def close(self) -> None:
        pass


async def test_resolver_refuses_a_name_resolving_to_metadata() -> None:
    client = Egress(resolver=FakeDns({"evil.test": ["169.254.169.254", "10.0.0.1"]}))
    try:
        with pytest.raises(EgressDenied, match=r"evil\.test resolves only to refused"):
            await _get(client, "http://evil.test/")
    finally:
        await client.aclose()


async def test_resolver_connects_only_to_admitted_addresses(server: Server) -> None:
    """127.0.0.2 is loopback but not admitted; a trap server there must see nothing."""
    trap_seen: list[dict[str, Any]] = []
    trap = await _start(_app(trap_seen, asyncio.Event()), "127.0.0.2", server.port)
    client = Egress(TEST_POLICY, resolver=FakeDns({"rebind.test": ["127.0.0.2", "127.0.0.1"]}))
    try:
        response = await _get(client, f"http://rebind.test:{server.port}/echo")
    finally:
        await client.aclose()
        await trap.cleanup()
    assert response.status == 200
    assert trap_seen == []
    assert len(server.seen) == 1


# ---- redirects -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]:9/",
        "http://metadata.google.internal/",
        "file:///etc/passwd",
    ],
)
async def test_redirect_to_a_refused_destination_is_not_followed(
    server: Server, egress: Egress, loopback_only: list[str], target: str
) -> None:
    with pytest.raises(EgressDenied, match="refused"):
        await _get(egress, server.url(f"/redirect?to={target}"))
    assert len(server.seen) == 1
    assert loopback_only == []  # refused before any connection was attempted


async def test_redirect_chain_is_followed(server: Server, egress: Egress) -> None:
    response = await _get(egress, server.url("/chain/3"))
    assert (response.status, response.body) == (200, b"done")
    assert response.url == server.url("/chain/0")
    assert len(server.seen) == 4


async def test_redirect_chain_is_limited(server: Server) -> None:
    client = Egress(EgressPolicy(allowed_hosts=frozenset({"127.0.0.1"}), max_redirects=2))
    try:
        with pytest.raises(EgressDenied, match="more than 2 redirects"):
            await _get(client, server.url("/chain/3"))
    finally:
        await client.aclose()
    assert len(server.seen) == 3


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [("303", "GET", ""), ("302", "GET", ""), ("301", "GET", ""), ("307", "POST", "payload")],
)
async def test_redirect_method_rewriting(
    server: Server, egress: Egress, status: str, method: str, body: str
) -> None:
    request = HttpRequest(
        "POST", server.url(f"/redirect?status={status}&to=/echo"), body=b"payload"
    )
    response = await egress.send(request)
    echoed = json.loads(response.body)
    assert (echoed["method"], echoed["body"]) == (method, body)


@pytest.mark.parametrize(("host", "kept"), [("127.0.0.1", True), ("localhost", False)])
async def test_authorization_is_dropped_when_the_host_changes(
    server: Server, egress: Egress, host: str, kept: bool
) -> None:
    url = server.url(f"/redirect?to={server.url('/echo', host)}")
    response = await _get(egress, url, headers={"Authorization": "Bearer secret"})
    echoed = json.loads(response.body)
    assert ("Authorization" in echoed["headers"]) is kept


# ---- limits ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_response_size_limit(server: Server, stream: bool) -> None:
    client = Egress(EgressPolicy(allowed_hosts=frozenset({"127.0.0.1"}), max_response_bytes=4096))
    suffix = "&stream=1" if stream else ""
    try:
        assert len((await _get(client, server.url(f"/big?size=4096{suffix}"))).body) == 4096
        with pytest.raises(EgressDenied, match="4096-byte limit"):
            await _get(client, server.url(f"/big?size=8192{suffix}"))
    finally:
        await client.aclose()


async def test_timeout(server: Server, egress: Egress) -> None:
    with pytest.raises(TimeoutError):
        await _get(egress, server.url("/slow"), timeout_s=0.2)


async def test_connection_refused_is_an_os_error(egress: Egress) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OSError, match="Cannot connect"):
        await _get(egress, f"http://127.0.0.1:{port}/")


def test_construction_needs_no_event_loop() -> None:
    Egress()  # the session is created lazily, inside a running loop


# ---- the http node over the real guard -------------------------------------------------------
class Verbatim:
    """Templates that return values unchanged (this suite is about HTTP, not templating)."""

    def check_template(self, text: str) -> str | None:
        return None

    def check_expression(self, text: str) -> str | None:
        return None

    async def render(self, value: JSON, context: Any) -> JSON:
        return value

    async def evaluate(self, expression: str, context: Any) -> JSON:
        raise TemplateError("not supported")

    def renders_inline(self, value: JSON, expressions: Any) -> bool:
        return True


def _call(config: dict[str, JSON], context: dict[str, object] | None = None) -> NodeCall:
    node = Node(id="fetch", type="http", config=config)
    return NodeCall("inst-1", "task-1", node, 1, "inst-1:fetch:0:1", context or {})


async def test_node_sends_idempotency_key_and_parses_json(server: Server, egress: Egress) -> None:
    executor = HttpExecutor(egress, Verbatim())
    config: dict[str, JSON] = {"url": server.url("/echo"), "query": {"q": "a b"}, "json": {"x": 1}}
    result = await executor.execute(_call(config))
    assert isinstance(result.output, dict)
    assert result.output["status"] == 200
    received = server.seen[0]
    assert received["headers"]["Idempotency-Key"] == "inst-1:fetch:0:1"
    assert (received["method"], received["path"]) == ("POST", "/echo?q=a+b")
    assert json.loads(received["body"]) == {"x": 1}
    assert isinstance(result.output["body"], dict)  # parsed, the server sent JSON
    assert result.output["body"]["method"] == "POST"


async def test_node_returns_text_bodies(server: Server, egress: Egress) -> None:
    result = await HttpExecutor(egress, Verbatim()).execute(_call({"url": server.url("/text")}))
    assert isinstance(result.output, dict)
    assert result.output["body"] == "plain text"
    assert isinstance(result.output["headers"], dict)
    assert result.output["headers"]["x-custom"] == "yes"


@pytest.mark.parametrize(("code", "retryable"), [(503, True), (429, True), (404, False)])
async def test_node_fails_on_unexpected_status(
    server: Server, egress: Egress, code: int, retryable: bool
) -> None:
    executor = HttpExecutor(egress, Verbatim())
    with pytest.raises(NodeFailure, match=f"status {code}: server says no") as caught:
        await executor.execute(_call({"url": server.url(f"/status/{code}")}))
    assert caught.value.retryable is retryable


async def test_node_refused_destination_is_not_retryable(egress: Egress) -> None:
    executor = HttpExecutor(egress, Verbatim())
    with pytest.raises(NodeFailure, match="refused") as caught:
        await executor.execute(_call({"url": "http://169.254.169.254/latest/meta-data/"}))
    assert caught.value.retryable is False


async def test_node_with_jinja_templates(server: Server, egress: Egress) -> None:
    templating = pytest.importorskip("cadenza.infrastructure.templating")
    executor = HttpExecutor(egress, templating.JinjaTemplates())
    config: dict[str, JSON] = {"url": "{{ base }}/echo", "query": {"id": "{{ id }}"}}
    result = await executor.execute(_call(config, {"base": server.base, "id": 7}))
    assert isinstance(result.output, dict)
    assert server.seen[0]["path"] == "/echo?id=7"
