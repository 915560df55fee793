"""Ports of the AI layer: model providers and the MCP tool gateway."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cadenza.domain.json import JSON, JSONObject


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: JSONObject


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: JSONObject


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    response_schema: JSONObject | None = None  # structured output, validated by the caller
    idempotency_key: str | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ChatResponse:
    message: ChatMessage
    usage: Usage
    model: str
    finish_reason: str
    latency_s: float
    provider: str = ""


class ProviderError(Exception):
    """A provider call failed; ``retryable`` and ``retry_after`` drive the retry policy."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


TokenSink = Callable[[str], None]


class ModelProvider(Protocol):
    name: str

    async def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        """One model turn; streams tokens to ``on_token`` when given. Raises ProviderError."""
        ...

    async def list_models(self) -> list[str]:
        """The provider's model list (its health check). Raises ProviderError."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ToolInfo:
    server: str
    name: str
    description: str
    input_schema: JSONObject
    annotations: JSONObject = field(default_factory=dict)  # readOnlyHint, destructiveHint, ...
    definition_hash: str = ""  # sha256 of the canonical JSON of name+description+schema+annotations


@dataclass(frozen=True)
class ToolResult:
    content: JSON  # text parts joined / structured content
    is_error: bool = False
    structured: JSON = None


class ToolError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ToolGateway(Protocol):
    """Pooled sessions to MCP servers by name, with a cached tool catalog."""

    async def list_tools(self, server: str) -> list[ToolInfo]: ...

    async def call_tool(
        self,
        server: str,
        name: str,
        arguments: JSONObject,
        *,
        idempotency_key: str,
        timeout_s: float = 30.0,
    ) -> ToolResult:
        """Call one tool; the key travels in the request ``_meta``. Raises ToolError."""
        ...

    async def ping(self, server: str) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ServerInfo:
    name: str
    transport: str  # stdio | http
    status: str  # connected | idle (no session now; one is opened on the next use)


@runtime_checkable
class ToolPins(Protocol):
    """What a gateway that pins tool definitions by hash shows admins (the MCP gateway; a
    gateway without servers need not implement it)."""

    def servers(self) -> list[ServerInfo]: ...

    def pinned_hash(self, server: str, tool: str) -> str | None:
        """The approved definition hash of a tool seen before (None: never seen)."""
        ...

    async def approve(self, server: str, tool: str, approved_by: str = "") -> None:
        """Accept a tool's current definition, for every process of the deployment when the
        approvals are stored; KeyError if it has not been seen."""
        ...
