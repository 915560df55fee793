"""The http node executor over a fake ``HttpClient``: request building and failure policy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pytest

from cadenza.application.nodes.http import HttpExecutor
from cadenza.application.ports import EgressDenied, HttpRequest, HttpResponse, TemplateError
from cadenza.application.ports_nodes import NodeCall, NodeFailure
from cadenza.domain.definition import Node
from cadenza.domain.json import JSON, JSONObject

KEY = "inst-1:call:0:2"


class FakeClient:
    """Records requests; answers with ``response`` or raises ``error``."""

    def __init__(self, response: HttpResponse | None = None, error: Exception | None = None):
        self.response = response or HttpResponse(200, {}, b"", "http://example.test/")
        self.error = error
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.response


class Verbatim:
    """Templates that return every value unchanged."""

    def check_template(self, text: str) -> str | None:
        return None

    def check_expression(self, text: str) -> str | None:
        return None

    async def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        return value

    async def evaluate(self, expression: str, context: Mapping[str, object]) -> JSON:
        return None

    def renders_inline(self, value: JSON, expressions: Sequence[str]) -> bool:
        return True


class Broken(Verbatim):
    async def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        raise TemplateError("'inputs' is undefined")


def _call(config: JSONObject, timeout_s: float | None = None) -> NodeCall:
    node = Node(id="call", type="http", config=config, timeout_s=timeout_s)
    return NodeCall("inst-1", "task-1", node, 2, KEY, {})


async def _send(config: JSONObject, timeout_s: float | None = None) -> HttpRequest:
    client = FakeClient()
    await HttpExecutor(client, Verbatim()).execute(_call(config, timeout_s))
    return client.requests[0]


def _response(status: int, body: bytes, content_type: str | None = None) -> HttpResponse:
    headers = {"Content-Type": content_type} if content_type else {}
    return HttpResponse(status, headers, body, "http://example.test/final")


async def _output(response: HttpResponse) -> JSONObject:
    result = await HttpExecutor(FakeClient(response), Verbatim()).execute(
        _call({"url": "http://x/"})
    )
    assert isinstance(result.output, dict)
    return result.output


# ---- request building ------------------------------------------------------------------------
async def test_get_by_default_with_idempotency_key_and_default_timeout() -> None:
    request = await _send({"url": "https://api.test/items"})
    assert (request.method, request.url, request.body) == ("GET", "https://api.test/items", None)
    assert request.headers == {"Idempotency-Key": KEY}
    assert request.timeout_s == 30.0


async def test_node_timeout_is_used() -> None:
    assert (await _send({"url": "https://api.test/"}, timeout_s=2.5)).timeout_s == 2.5


async def test_our_idempotency_key_replaces_a_configured_one() -> None:
    request = await _send(
        {"url": "https://api.test/", "headers": {"idempotency-key": "mine", "X-N": 3}}
    )
    assert request.headers == {"X-N": "3", "Idempotency-Key": KEY}


async def test_query_is_appended_to_the_existing_query() -> None:
    query: JSON = {"q": "a b", "tag": ["x", "y"], "on": True, "skip": None}
    request = await _send({"url": "https://api.test/s?page=2&raw=%2F", "query": query})
    assert request.url == "https://api.test/s?page=2&raw=%2F&q=a+b&tag=x&tag=y&on=true"


async def test_json_body_sets_content_type_and_defaults_to_post() -> None:
    request = await _send({"url": "https://api.test/", "json": {"name": "é", "n": [1, 2]}})
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body is not None
    assert json.loads(request.body) == {"name": "é", "n": [1, 2]}


async def test_configured_content_type_and_method_are_kept() -> None:
    config: JSONObject = {
        "url": "https://api.test/",
        "method": "put",
        "headers": {"content-type": "application/merge-patch+json"},
        "json": {},
    }
    request = await _send(config)
    assert request.method == "PUT"
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert "Content-Type" not in request.headers


async def test_text_body() -> None:
    request = await _send({"url": "https://api.test/", "method": "POST", "body": "a=1"})
    assert request.body == b"a=1"


@pytest.mark.parametrize(
    "config",
    [
        {"url": 5},
        {"url": ""},
        {"url": "https://api.test/", "json": {}, "body": "x"},
        {"url": "https://api.test/", "headers": ["x"]},
        {"url": "https://api.test/", "headers": {"X": {"nested": 1}}},
        {"url": "https://api.test/", "query": "a=1"},
        {"url": "https://api.test/", "expect_status": 200},
    ],
)
async def test_bad_config_fails_without_sending(config: JSONObject) -> None:
    client = FakeClient()
    with pytest.raises(NodeFailure) as caught:
        await HttpExecutor(client, Verbatim()).execute(_call(config))
    assert caught.value.retryable is False
    assert client.requests == []


async def test_template_error_is_not_retryable() -> None:
    client = FakeClient()
    with pytest.raises(NodeFailure, match="template error: 'inputs' is undefined") as caught:
        await HttpExecutor(client, Broken()).execute(_call({"url": "{{ inputs.url }}"}))
    assert caught.value.retryable is False
    assert client.requests == []


# ---- responses -------------------------------------------------------------------------------
async def test_output_shape_with_json_body() -> None:
    response = HttpResponse(
        201, {"Content-Type": "application/json; charset=utf-8", "X-Id": "7"}, b'{"id": 7}', "u"
    )
    assert await _output(response) == {
        "status": 201,
        "headers": {"content-type": "application/json; charset=utf-8", "x-id": "7"},
        "body": {"id": 7},
        "url": "u",
    }


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/problem+json", b'{"title": "t"}', {"title": "t"}),
        ("application/json", b"not json", "not json"),  # mislabelled: kept as text
        ("application/json", b"NaN", "NaN"),  # not JSON the engine can store
        ("text/plain", b'{"a": 1}', '{"a": 1}'),
        (None, b"caf\xc3\xa9 \xff", "café \ufffd"),
        ("text/plain; charset=latin-1", b"caf\xe9", "café"),
        ("text/plain; charset=bogus", b"ok", "ok"),
    ],
)
async def test_body_decoding(content_type: str | None, body: bytes, expected: JSON) -> None:
    assert (await _output(_response(200, body, content_type)))["body"] == expected


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (408, True), (429, True), (400, False), (404, False)],
)
async def test_unexpected_status(status: int, retryable: bool) -> None:
    client = FakeClient(_response(status, b"upstream   broke\n" + b"x" * 500))
    with pytest.raises(NodeFailure) as caught:
        await HttpExecutor(client, Verbatim()).execute(_call({"url": "https://api.test/?token=s"}))
    message = str(caught.value)
    assert f"GET https://api.test/ returned status {status}: upstream broke x" in message
    assert "token" not in message  # the query may hold secrets
    assert len(message) < 300
    assert caught.value.retryable is retryable


async def test_expect_status_accepts_listed_codes() -> None:
    client = FakeClient(_response(404, b"gone"))
    config: JSONObject = {"url": "https://api.test/", "expect_status": [200, 404]}
    result = await HttpExecutor(client, Verbatim()).execute(_call(config))
    assert isinstance(result.output, dict)
    assert result.output["status"] == 404
    client.response = _response(200, b"")
    with pytest.raises(NodeFailure, match="status 200"):
        await HttpExecutor(client, Verbatim()).execute(_call({**config, "expect_status": [204]}))


# ---- transport failures ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "retryable", "fragment"),
    [
        (EgressDenied("loopback address"), False, "destination refused by the egress guard"),
        (TimeoutError(), True, "timed out after 30s"),
        (ConnectionRefusedError("refused"), True, "failed: refused"),
        (OSError("no route"), True, "failed: no route"),
    ],
)
async def test_transport_failures(error: Exception, retryable: bool, fragment: str) -> None:
    executor = HttpExecutor(FakeClient(error=error), Verbatim())
    with pytest.raises(NodeFailure, match=fragment) as caught:
        await executor.execute(_call({"url": "https://user:pw@api.test/x"}))
    assert caught.value.retryable is retryable
    assert "pw" not in str(caught.value)
