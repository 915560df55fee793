"""How runtime configuration rows encode providers and MCP servers: the public ``body`` and
the sealed credentials, both ways."""

from __future__ import annotations

from collections.abc import Iterable

from cadenza.application.config_model import ConfigRow, McpSpec, ProviderSpec
from cadenza.domain.json import JSON, JSONObject


def provider_body(spec: ProviderSpec) -> JSONObject:
    prices: JSONObject = {m: {"prompt": p, "completion": c} for m, (p, c) in spec.prices.items()}
    return {
        "kind": spec.kind,
        "base_url": spec.base_url,
        "default_model": spec.default_model,
        "pool_size": spec.pool_size,
        "prices": prices,
    }


def mcp_body(spec: McpSpec) -> JSONObject:
    return {
        "command": spec.command,
        "args": _names(spec.args),
        "url": spec.url,
        "env_names": _names(spec.env),
        "header_names": _names(spec.headers),
    }


def _names(values: Iterable[str]) -> list[JSON]:
    return [*sorted(values)] if not isinstance(values, tuple) else [*values]


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_json(value: object) -> JSON:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def provider_spec(row: ConfigRow, creds: JSONObject) -> ProviderSpec:
    b = row.body
    prices: dict[str, tuple[float, float]] = {}
    raw = b.get("prices")
    if isinstance(raw, dict):
        for model, p in raw.items():
            if isinstance(p, dict):
                prices[model] = (_float(p.get("prompt")), _float(p.get("completion")))
    pool = b.get("pool_size")
    return ProviderSpec(
        row.name,
        str(b.get("kind") or "openai"),
        text_or_none(b.get("base_url")),
        str(b.get("default_model") or ""),
        pool if isinstance(pool, int) else None,
        prices,
        text_or_none(creds.get("api_key")),
    )


def mcp_spec(row: ConfigRow, creds: JSONObject) -> McpSpec:
    b = row.body
    args = b.get("args")
    return McpSpec(
        row.name,
        text_or_none(b.get("command")),
        tuple(str(a) for a in args) if isinstance(args, list) else (),
        _strings(creds.get("env")),
        text_or_none(b.get("url")),
        _strings(creds.get("headers")),
    )
