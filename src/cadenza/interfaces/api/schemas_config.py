"""Bodies of the runtime configuration routes (``routes/config.py``). No output model has a
field that could carry a credential: keys and env/header values go in, never out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from cadenza.application.runtime_config import ConfigView
from cadenza.interfaces.api.schemas import Strict

Source = Literal["environment", "database", "default"]
Scope = Literal["environment", "shared", "workspace"]


class PriceIn(Strict):
    prompt: float = Field(default=0.0, ge=0, description="per 1,000 prompt tokens")
    completion: float = Field(default=0.0, ge=0, description="per 1,000 completion tokens")


class ProviderConfigIn(Strict):
    kind: Literal["openai", "anthropic", "offline"] = "openai"
    base_url: str | None = Field(default=None, max_length=2048)
    default_model: str = Field(default="", max_length=200)
    pool_size: int | None = Field(default=100, ge=1, le=10_000)
    prices: dict[str, PriceIn] = Field(
        default_factory=dict, max_length=200, description="model (or '*') -> price"
    )
    api_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="sealed at rest, never returned; omit to keep the stored key",
    )


class McpServerConfigIn(Strict):
    command: str | None = Field(
        default=None, max_length=1024, description="a stdio server (system admins only)"
    )
    args: list[str] = Field(default_factory=list, max_length=100)
    env: dict[str, str] | None = Field(
        default=None,
        max_length=100,
        description="every value is a credential: sealed, never returned (names are); "
        "omit to keep the stored values",
    )
    url: str | None = Field(default=None, max_length=2048, description="streamable HTTP")
    headers: dict[str, str] | None = Field(
        default=None,
        max_length=100,
        description="every value is a credential, as env; omit to keep the stored values",
    )


class SettingIn(Strict):
    value: str | int | float | bool | None = Field(description="the new value, of its type")


class _Stored(BaseModel):
    source: Source
    scope: Scope
    workspace_id: str | None = Field(description="None: environment; '*': shared")
    revision: int = 0
    updated_at: float | None = None
    updated_by: str | None = None


def _scope(v: ConfigView) -> Scope:
    if v.workspace_id is None:
        return "environment"
    return "shared" if v.workspace_id == "*" else "workspace"


class ProviderConfigOut(_Stored):
    name: str
    kind: str
    base_url: str | None = None
    default_model: str = ""
    pool_size: int | None = None
    prices: dict[str, PriceIn] = Field(default_factory=dict)
    has_api_key: bool = False

    @classmethod
    def of(cls, v: ConfigView) -> ProviderConfigOut:
        b = v.body
        prices = b.get("prices")
        pool = b.get("pool_size")
        return cls(
            name=v.name,
            source="environment" if v.source == "environment" else "database",
            scope=_scope(v),
            workspace_id=v.workspace_id,
            revision=v.revision,
            updated_at=v.updated_at,
            updated_by=v.updated_by,
            kind=str(b.get("kind") or "openai"),
            base_url=_text(b.get("base_url")),
            default_model=str(b.get("default_model") or ""),
            pool_size=pool if isinstance(pool, int) else None,
            prices={
                m: PriceIn.model_validate(p)
                for m, p in (prices.items() if isinstance(prices, dict) else [])
            },
            has_api_key=bool(b.get("has_api_key")),
        )


class McpServerConfigOut(_Stored):
    name: str
    transport: Literal["stdio", "http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    url: str | None = None
    env_names: list[str] = Field(default_factory=list, description="values are never returned")
    header_names: list[str] = Field(default_factory=list, description="values never returned")

    @classmethod
    def of(cls, v: ConfigView) -> McpServerConfigOut:
        b = v.body
        command = _text(b.get("command"))
        return cls(
            name=v.name,
            source="environment" if v.source == "environment" else "database",
            scope=_scope(v),
            workspace_id=v.workspace_id,
            revision=v.revision,
            updated_at=v.updated_at,
            updated_by=v.updated_by,
            transport="stdio" if command else "http",
            command=command,
            args=_texts(b.get("args")),
            url=_text(b.get("url")),
            env_names=_texts(b.get("env_names")),
            header_names=_texts(b.get("header_names")),
        )


class SettingOut(BaseModel):
    name: str
    value: str | int | float | bool | None
    source: Source = Field(description="environment (read-only), database, or default")
    updated_at: float | None = None
    updated_by: str | None = None

    @classmethod
    def of(cls, v: ConfigView) -> SettingOut:
        source: Source = "database"
        if v.source in ("environment", "default"):
            source = "environment" if v.source == "environment" else "default"
        return cls(
            name=v.name,
            value=_scalar(v.body.get("value")),
            source=source,
            updated_at=v.updated_at,
            updated_by=v.updated_by,
        )


def _scalar(value: object) -> str | int | float | bool | None:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: object) -> list[str]:
    return [str(x) for x in value] if isinstance(value, list) else []
