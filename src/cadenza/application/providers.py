"""Named model providers, the default one, and the price table that turns tokens into cost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.application.ports_ai import (
    ChatRequest,
    ChatResponse,
    ModelProvider,
    ProviderError,
    TokenSink,
)
from cadenza.application.ports_nodes import NodeFailure
from cadenza.application.ports_quotas import Reservation
from cadenza.domain.json import JSONObject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Price:
    """Currency units per 1,000 tokens."""

    prompt: float = 0.0
    completion: float = 0.0


@dataclass(frozen=True)
class ProviderChanged:
    """A provider's configuration changed: its cached client was replaced (or removed)."""

    name: str
    removed: bool = False


@dataclass(frozen=True)
class ProviderInfo:
    """How a provider is configured, as admins may see it: never its key."""

    kind: str  # openai | anthropic | offline
    base_url: str | None = None
    breaker: Callable[[], str] | None = None  # the circuit breaker's state now


class TurnBudget(Protocol):
    """The workspace token and cost budgets (``application.quotas.Quotas``)."""

    async def before_turn(
        self, workspace_id: str, request: ChatRequest, price: Price
    ) -> Reservation | None:
        """Reserve the turn against the budgets; NodeFailure when it does not fit."""
        ...

    async def after_turn(
        self, workspace_id: str, reservation: Reservation | None, usage: JSONObject
    ) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...


@dataclass
class Providers:
    providers: dict[str, ModelProvider]
    default: str
    default_models: dict[str, str] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)
    listeners: list[Callable[[ProviderChanged], None]] = field(default_factory=list)
    retired: list[ModelProvider] = field(default_factory=list)
    grace_s: float = 30.0  # calls in flight keep the old client this long (the call timeout)
    info: dict[str, ProviderInfo] = field(default_factory=dict)
    budget: TurnBudget | None = None  # workspace quotas; None: turns are not metered
    # stored in the database (runtime configuration), by (workspace id or "*", name): a
    # workspace's own come first, then the shared ones ("*"), then ``providers`` above
    scoped: dict[tuple[str, str], ModelProvider] = field(default_factory=dict)
    scoped_models: dict[tuple[str, str], str] = field(default_factory=dict)
    scoped_info: dict[tuple[str, str], ProviderInfo] = field(default_factory=dict)
    own_prices: dict[int, Mapping[str, Price]] = field(default_factory=dict)  # id(provider)
    workspace_owned: set[int] = field(default_factory=set)  # id() of a workspace's own

    async def chat(
        self,
        provider: ModelProvider,
        request: ChatRequest,
        workspace_id: str,
        on_token: TokenSink | None = None,
    ) -> ChatResponse:
        """One model turn of a task in ``workspace_id``: checked against the workspace's
        budgets before the call (a turn that would cross one raises NodeFailure and is never
        sent), its usage counted for the workspace after it. Raises ProviderError."""
        if self.budget is None:
            return await provider.chat(request, on_token)
        budget = self.budget
        try:
            held = await budget.before_turn(
                workspace_id, request, self.price(request.model, provider)
            )
        except NodeFailure:
            raise
        except Exception as exc:  # the store is away: fail closed, the task retries later
            raise NodeFailure(
                f"the model budget of workspace {workspace_id!r} could not be checked "
                f"({type(exc).__name__}); the model turn was not started",
                retryable=True,
            ) from exc
        try:
            response = await provider.chat(request, on_token)
        except BaseException:
            if held is not None:
                await _logged(budget.release(held), workspace_id)
            raise
        # a paid answer is kept even if its usage cannot be counted now (logged)
        usage = self.usage(response, provider)
        await _logged(budget.after_turn(workspace_id, held, usage), workspace_id)
        return response

    def price(self, model: str, provider: ModelProvider | None = None) -> Price:
        """The provider's own price of ``model`` (stored configuration), else the table's."""
        own = self.own_prices.get(id(provider)) if provider is not None else None
        if own:
            found = own.get(model) or own.get("*")
            if found is not None:
                return found
        return self.prices.get(model) or self.prices.get("*") or Price()

    async def replace(
        self,
        name: str,
        provider: ModelProvider | None,
        model: str = "",
        info: ProviderInfo | None = None,
        *,
        scope: str | None = None,
        prices: Mapping[str, Price] | None = None,
    ) -> None:
        """Swap the cached client of ``name`` for one built from new configuration; calls in
        flight finish on the old client, closed after ``grace_s``. ``None`` removes it.
        ``scope``: a workspace id or "*" for a provider of the stored configuration."""
        if scope is not None:
            await self._replace_scoped((scope, name), provider, model, info, prices)
            return
        old = self.providers.pop(name, None)
        self.info.pop(name, None)
        if provider is not None:
            self.providers[name] = provider
            if model:
                self.default_models[name] = model
            if info is not None:
                self.info[name] = info
        else:
            self.default_models.pop(name, None)
        for listener in self.listeners:
            listener(ProviderChanged(name, removed=provider is None))
        self._retire(old, provider)

    async def _replace_scoped(
        self,
        key: tuple[str, str],
        provider: ModelProvider | None,
        model: str,
        info: ProviderInfo | None,
        prices: Mapping[str, Price] | None,
    ) -> None:
        old = self.scoped.pop(key, None)
        self.scoped_info.pop(key, None)
        self.scoped_models.pop(key, None)
        if old is not None:
            self.own_prices.pop(id(old), None)
            self.workspace_owned.discard(id(old))
        if provider is not None:
            self.scoped[key] = provider
            if key[0] != "*":
                self.workspace_owned.add(id(provider))
            if model:
                self.scoped_models[key] = model
            if info is not None:
                self.scoped_info[key] = info
            if prices:
                self.own_prices[id(provider)] = dict(prices)
        for listener in self.listeners:
            listener(ProviderChanged(key[1], removed=provider is None))
        self._retire(old, provider)

    def _retire(self, old: ModelProvider | None, new: ModelProvider | None) -> None:
        if old is not None and old is not new:
            self.retired.append(old)
            asyncio.get_running_loop().call_later(
                self.grace_s, lambda: asyncio.ensure_future(self._close_retired(old))
            )

    async def _close_retired(self, old: ModelProvider) -> None:
        if old in self.retired:
            self.retired.remove(old)
            await old.aclose()

    def resolve(
        self, provider: object, model: object, workspace_id: str = ""
    ) -> tuple[ModelProvider, str]:
        """The client and model a node of ``workspace_id`` uses: the workspace's own stored
        provider of that name, else the shared stored one, else the environment's; a provider
        of another workspace is never found."""
        name = provider if isinstance(provider, str) and provider else self.default
        found, default_model = None, None
        for key in ((workspace_id, name), ("*", name)):
            if key[0] and key in self.scoped:
                found, default_model = self.scoped[key], self.scoped_models.get(key)
                break
        if found is None:
            found, default_model = self.providers.get(name), self.default_models.get(name)
        if found is None:
            raise NodeFailure(
                f"no model provider named {name!r} (configured: {self._known(workspace_id)})",
                retryable=False,
            )
        chosen = model if isinstance(model, str) and model and model != "default" else None
        chosen = chosen or default_model or "default"
        return found, chosen

    def _known(self, workspace_id: str) -> str:
        names = set(self.providers)
        names.update(n for (w, n) in self.scoped if w in ("*", workspace_id))
        return ", ".join(sorted(names)) or "none"

    def usage(self, response: ChatResponse, provider: ModelProvider | None = None) -> JSONObject:
        price = self.price(response.model, provider)
        u = response.usage
        cost = (u.prompt_tokens * price.prompt + u.completion_tokens * price.completion) / 1000
        usage: JSONObject = {
            "provider": response.provider,
            "model": response.model,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cost": round(cost, 8),
            "latency_s": round(response.latency_s, 4),
        }
        if provider is not None and id(provider) in self.workspace_owned:
            usage["scope"] = "workspace"  # system-wide metrics do not name it
        return usage

    async def aclose(self) -> None:
        for provider in [*self.providers.values(), *self.scoped.values(), *self.retired]:
            await provider.aclose()
        self.retired.clear()


@dataclass(frozen=True)
class ModelProbe:
    """What a provider's test call found (``POST /providers/{name}/test``, and the
    validation of a provider before it is saved)."""

    ok: bool
    detail: str
    latency_ms: float
    models: list[str] = field(default_factory=list)


async def probe_models(
    provider: ModelProvider, timeout_s: float, max_models: int = 100
) -> ModelProbe:
    """List the provider's models through the client tasks use (timeout, retries, breaker)."""
    started = time.perf_counter()

    def ms() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    try:
        async with asyncio.timeout(timeout_s):
            models = await provider.list_models()
    except ProviderError as exc:
        return ModelProbe(False, str(exc), ms())
    except TimeoutError:
        return ModelProbe(False, f"no answer within {timeout_s:g} s", ms())
    return ModelProbe(True, f"listed {len(models)} model(s)", ms(), models[:max_models])


async def _logged(count: Awaitable[None], workspace_id: str) -> None:
    try:
        await asyncio.shield(count)
    except Exception:
        log.warning("model usage of workspace %r was not counted", workspace_id, exc_info=True)
