"""Secrets in the http node: templates see only an opaque placeholder, the value goes into the
rendered request at the egress boundary, messages show ``***``; and the worker's redactor masks
whatever a task reports with the values revealed to it."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

import pytest
from tests.logs import json_log_lines

from cadenza.application.context import NO_SECRETS
from cadenza.application.nodes.http import HttpExecutor
from cadenza.application.ports import HttpRequest, HttpResponse
from cadenza.application.ports_nodes import NodeCall, NodeFailure, NodeResult
from cadenza.application.redaction import Redactor
from cadenza.application.secrets import SecretMissing, TaskSecrets
from cadenza.application.work import Capacity, Work
from cadenza.application.worker import Worker
from cadenza.domain import commands as cmd
from cadenza.domain.definition import Node
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.templating import JinjaTemplates

VALUE = "v4lue/with+odd=chars"


class Vault:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.asked: list[tuple[str, frozenset[str]]] = []

    async def reveal(self, workspace_id: str, names: Collection[str]) -> dict[str, str]:
        self.asked.append((workspace_id, frozenset(names)))
        missing = sorted(set(names) - set(self.values))
        if missing:
            raise SecretMissing(f"secret {missing[0]!r} is not set in this workspace")
        return {n: self.values[n] for n in names}


class Client:
    def __init__(self, response: HttpResponse | None = None, error: Exception | None = None):
        self.response = response or HttpResponse(200, {}, b"{}", "https://api.test/")
        self.error = error
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return self.response


def call(config: JSONObject, vault: Vault, redactor: Redactor | None = None) -> NodeCall:
    node = Node(id="call", type="http", config=config)
    context = {"inputs": {"name": "ada"}, "secrets": NO_SECRETS}
    secrets = TaskSecrets(vault, "team-a", redactor or Redactor())
    return NodeCall(
        "i", "t", node, 1, "i:call:0:1", context, workspace_id="team-a", secrets=secrets
    )


async def test_the_value_goes_into_url_query_and_headers_after_rendering() -> None:
    vault, client = Vault({"TOKEN": VALUE, "KEY": "k&y"}), Client()
    config: JSONObject = {
        "url": "https://api.test/{{ secrets.TOKEN }}/{{ inputs.name }}",
        "query": {"key": "{{ secrets.KEY }}"},
        "headers": {"Authorization": "Bearer {{secrets.TOKEN}}"},
    }
    await HttpExecutor(client, JinjaTemplates()).execute(call(config, vault))
    request = client.requests[0]
    assert request.url == f"https://api.test/{VALUE}/ada?key=k%26y"
    assert request.headers["Authorization"] == f"Bearer {VALUE}"
    assert vault.asked == [("team-a", frozenset({"TOKEN", "KEY"}))]


async def test_a_filter_never_sees_the_value() -> None:
    """Even in an egress field, a template acts on the placeholder, never on the value."""
    vault, client = Vault({"TOKEN": VALUE}), Client()
    config: JSONObject = {
        "url": "https://api.test/",
        "headers": {"X": "{{ '{{ secrets.TOKEN }}' | reverse }}"},
    }
    await HttpExecutor(client, JinjaTemplates()).execute(call(config, vault))
    sent = client.requests[0].headers["X"]
    assert VALUE not in sent
    assert VALUE[::-1] not in sent
    assert vault.asked == []  # a reversed placeholder names no secret


async def test_using_secrets_as_a_template_variable_fails_clearly() -> None:
    config: JSONObject = {"url": "https://api.test/", "headers": {"X": "{{ secrets.T | reverse }}"}}
    with pytest.raises(NodeFailure) as caught:
        await HttpExecutor(Client(), JinjaTemplates()).execute(call(config, Vault({"T": VALUE})))
    assert "secrets are not available in templates" in str(caught.value)
    assert caught.value.retryable is False


async def test_messages_show_stars_where_the_secret_goes() -> None:
    client = Client(error=OSError("connection refused"))
    config: JSONObject = {"url": "https://api.test/hook/{{ secrets.TOKEN }}"}
    with pytest.raises(NodeFailure) as caught:
        await HttpExecutor(client, JinjaTemplates()).execute(call(config, Vault({"TOKEN": VALUE})))
    assert str(caught.value) == "http: GET https://api.test/hook/*** failed: connection refused"


async def test_an_unknown_secret_fails_before_anything_is_sent() -> None:
    client = Client()
    config: JSONObject = {"url": "https://api.test/", "headers": {"X": "{{ secrets.NOPE }}"}}
    with pytest.raises(NodeFailure) as caught:
        await HttpExecutor(client, JinjaTemplates()).execute(call(config, Vault({})))
    assert str(caught.value) == "secret 'NOPE' is not set in this workspace"
    assert caught.value.retryable is False
    assert client.requests == []


async def test_an_input_cannot_forge_a_placeholder() -> None:
    """The placeholder carries a per-call nonce: a value that looks like one is sent as is."""
    vault, client = Vault({"TOKEN": VALUE}), Client()
    executor = HttpExecutor(client, JinjaTemplates())
    config: JSONObject = {"url": "https://api.test/{{ inputs.name }}"}
    node_call = call(config, vault)
    forged = {**node_call.context, "inputs": {"name": "cdz-secret-000000000000000000000000.TOKEN."}}
    await executor.execute(
        NodeCall("i", "t", node_call.node, 1, "k", forged, secrets=node_call.secrets)
    )
    assert VALUE not in client.requests[0].url
    assert vault.asked == []


# ---- the worker's one redaction function ------------------------------------------------------
class LeakyExecutor:
    """Reveals the secret, then reports it in every way a task can."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail

    async def execute(self, call: NodeCall) -> NodeResult:
        assert call.secrets is not None
        value = (await call.secrets.reveal(["TOKEN"]))["TOKEN"]
        assert call.record_step is not None
        assert call.on_tokens is not None
        await call.record_step({"kind": "note", "text": f"sent {value}"})
        call.on_tokens(value[::-1])
        if self.fail:
            raise NodeFailure(f"remote said: {value}", retryable=False)
        return NodeResult({"echo": value}, usage={"note": value})


@pytest.mark.parametrize("fail", [False, True], ids=["completes", "fails"])
async def test_everything_a_task_reports_passes_the_redactor(fail: bool) -> None:
    posted: list[cmd.Command] = []
    submitted: list[cmd.Command] = []
    live: list[object] = []

    async def submit(command: cmd.Command) -> object:
        submitted.append(command)
        return "ok"

    worker = Worker(
        posted.append,
        submit,
        {"leaky": LeakyExecutor(fail)},
        Capacity(1),
        Vault({"TOKEN": VALUE}),
        lambda: None,
    )
    worker.publish_live = live.append
    node = Node(id="n", type="leaky", config={})
    worker.start(Work("i", "t", "/", node, 1, "lease", {}, "i:n:0:1", workspace_id="team-a"))
    await asyncio.gather(*worker.running.values())
    reported = repr([*posted, *submitted, *live])
    assert VALUE not in reported
    assert VALUE[::-1] not in reported
    assert "***" in reported
    kinds = [type(c).__name__ for c in posted]
    assert kinds == (["FailTask"] if fail else ["CompleteTask"])


class BuggyExecutor:
    """Reveals the secret, then crashes with it in the exception (an executor bug)."""

    async def execute(self, call: NodeCall) -> NodeResult:
        assert call.secrets is not None
        value = (await call.secrets.reveal(["TOKEN"]))["TOKEN"]
        raise RuntimeError(f"bug while sending {value}")


async def test_an_executor_bug_is_logged_and_reported_without_the_value() -> None:
    posted: list[cmd.Command] = []

    async def submit(command: cmd.Command) -> object:
        return "ok"

    worker = Worker(
        posted.append,
        submit,
        {"buggy": BuggyExecutor()},
        Capacity(1),
        Vault({"TOKEN": VALUE}),
        lambda: None,
    )
    node = Node(id="n", type="buggy", config={})
    with json_log_lines("INFO") as lines:
        worker.start(Work("i", "t", "/", node, 1, "lease", {}, "i:n:0:1", workspace_id="team-a"))
        await asyncio.gather(*worker.running.values())
    logged = lines.getvalue()
    assert "bug while sending ***" in logged
    assert "RuntimeError" in logged  # the traceback is there, redacted
    assert VALUE not in logged
    [failed] = posted
    assert isinstance(failed, cmd.FailTask)
    assert failed.error == "RuntimeError: bug while sending ***"
