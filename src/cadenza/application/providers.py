"""Named model providers, the default one, and the price table that turns tokens into cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cadenza.application.ports import NodeFailure
from cadenza.application.ports_ai import ChatResponse, ModelProvider
from cadenza.domain.json import JSONObject


@dataclass(frozen=True)
class Price:
    """Currency units per 1,000 tokens."""

    prompt: float = 0.0
    completion: float = 0.0


@dataclass
class Providers:
    providers: dict[str, ModelProvider]
    default: str
    default_models: dict[str, str] = field(default_factory=dict)
    prices: Mapping[str, Price] = field(default_factory=dict)

    def resolve(self, provider: object, model: object) -> tuple[ModelProvider, str]:
        name = provider if isinstance(provider, str) and provider else self.default
        found = self.providers.get(name)
        if found is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise NodeFailure(
                f"no model provider named {name!r} (configured: {known})", retryable=False
            )
        chosen = model if isinstance(model, str) and model and model != "default" else None
        chosen = chosen or self.default_models.get(name) or "default"
        return found, chosen

    def usage(self, response: ChatResponse) -> JSONObject:
        price = self.prices.get(response.model) or self.prices.get("*") or Price()
        u = response.usage
        cost = (u.prompt_tokens * price.prompt + u.completion_tokens * price.completion) / 1000
        return {
            "provider": response.provider,
            "model": response.model,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cost": round(cost, 8),
            "latency_s": round(response.latency_s, 4),
        }

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def add_usage(total: JSONObject, more: JSONObject) -> JSONObject:
    """Sum token counts, cost and latency of several calls (an agent's turns)."""
    out = dict(total)
    for key in ("prompt_tokens", "completion_tokens", "cost", "latency_s"):
        a, b = out.get(key, 0), more.get(key, 0)
        if isinstance(a, int | float) and isinstance(b, int | float):
            out[key] = round(a + b, 8) if key in ("cost", "latency_s") else a + b
    for key in ("provider", "model"):
        if key in more:
            out[key] = more[key]
    out["calls"] = int(out.get("calls", 0) or 0) + 1  # type: ignore[arg-type]
    return out
