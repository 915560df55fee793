"""Settings from CADENZA_* environment variables (and an optional cadenza.toml)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite:///.cadenza/cadenza.db"


def _address_or_network(value: str) -> str:
    """One IP address or CIDR network, written canonically. uvicorn would take anything else
    (a name, ``*``, a network with host bits) as a literal, or as "trust every peer"."""
    try:
        return str(ipaddress.ip_network(value) if "/" in value else ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR network: {exc}") from None


IpOrNetwork = Annotated[str, AfterValidator(_address_or_network)]


class ProviderSettings(BaseModel):
    """A model provider. Keys are never written in config: ``api_key_env`` names the variable."""

    name: str
    kind: Literal["openai", "anthropic", "offline"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    default_model: str = ""
    pool_size: int | None = Field(
        default=100,  # the SDK clients' DEFAULT_POOL_SIZE (docs/providers.md)
        ge=1,
        description="HTTP connections to this provider per process; null for no limit",
    )


class McpServerSettings(BaseModel):
    """An MCP server: a stdio ``command`` (+ ``args``, ``env``) or a streamable-HTTP ``url``."""

    name: str
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)  # values may be "env:VAR" references
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class PriceSettings(BaseModel):
    prompt: float = Field(default=0.0, ge=0, description="per 1,000 prompt tokens")
    completion: float = Field(default=0.0, ge=0, description="per 1,000 completion tokens")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CADENZA_", toml_file="cadenza.toml", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # precedence: explicit arguments, then CADENZA_* variables, then ./cadenza.toml
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    database_url: str = DEFAULT_DATABASE_URL
    worker_id: str = Field(
        default="",
        max_length=64,
        description="stable identity of this worker; random if empty. A restarted worker with "
        "the same identity releases its previous run's leases at once, without charging the "
        "tasks a requeue (each counts toward task_max_crashes)",
    )
    lease_s: float = Field(
        default=30.0,
        gt=0,
        description="task lease duration; renewed every third. Also how long due timers one "
        "worker's sweeper claimed are skipped by the others (a dead claimer's fire this late)",
    )
    capacity: int = Field(default=10_000, ge=0, description="in-flight task cap of this worker")
    max_requeues: int = Field(
        default=10,
        ge=0,
        description="a task whose lease expired this many times (its worker lost or stalled, "
        "not stopped or restarted) fails",
    )
    task_max_crashes: int = Field(
        default=3,
        ge=0,
        description="an attempt whose worker process died this many times while holding it "
        "(found by a restart under the same worker_id) fails as a probable cause of the crash, "
        "then follows its node's retry policy; 0: never",
    )
    failpoints: str = Field(
        default="",
        description="tests only: named crash points that SIGKILL the process, e.g. "
        "'after-claim-before-execute:3' (see cadenza.application.failpoints)",
    )
    sweep_interval_s: float = Field(default=1.0, gt=0)
    engine_inline_pure: bool = Field(
        default=True,
        description="Run pure nodes (transform, condition) whose templates need no render "
        "thread inside the decision step that reached them, so a chain of them commits once; "
        "false sends every node to a worker",
    )
    engine_inline_steps: int = Field(
        default=1000,
        ge=1,
        description="Pure nodes one instance may compute inside one decision step; beyond it "
        "they go to workers, so a map or loop of pure bodies cannot hold the commit loop "
        "(every tenant's progress) for longer than that many renders",
    )
    egress_allow_private: bool = False
    egress_allowed_hosts: list[str] = Field(default_factory=list)
    providers: list[ProviderSettings] = Field(default_factory=list)
    config_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names and IP addresses/CIDR networks that provider and MCP server URLs "
        "given through the API (runtime configuration) may reach although they are private, "
        "loopback or link-local; empty: only public addresses (docs/security.md)",
    )
    default_provider: str = Field(default="offline", description="used when a node names none")
    prices: dict[str, PriceSettings] = Field(default_factory=dict)  # model (or "*") -> price
    mcp_servers: list[McpServerSettings] = Field(default_factory=list)
    agent_health_interval_s: float = Field(default=30.0, gt=0)
    leader_lease_s: float = Field(
        default=15.0,
        gt=0,
        description="lease of the one active agent health checker (cadenza agents, serve); "
        "renewed every third; a standby takes over within this long after the holder dies",
    )
    assignment_poll_s: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="how often a waiting external-worker poll, and a task waiting for its "
        "worker's result, look at the assignments table; changes made in the same process "
        "wake them at once",
    )
    metrics_refresh_s: float = Field(
        default=1.0,
        ge=0,
        description="system-wide gauges (instances active, queue depth, agents healthy) are "
        "counted in the database at most once per this many seconds, however often /metrics "
        "is scraped",
    )
    approve_destructive_tools: bool = Field(
        default=False, description="destructive MCP tools run only after an approval node"
    )
    template_time_ms: int = Field(
        default=200, gt=0, description="time budget of one template render (all of a value)"
    )
    template_max_steps: int = Field(
        default=1_000_000,
        gt=0,
        description="step budget of one template render: loop iterations, calls, filters and "
        "operators",
    )
    template_threads: int = Field(
        default=4, ge=1, description="threads that run templates which can loop or call"
    )
    # ---- the API (``cadenza serve``) ----
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    admin_password: str = Field(
        default="", description="password of the first admin, used only when no user exists"
    )
    token_secret: str = Field(
        default="",
        description="JWT signing secret (>= 32 characters); empty: token_secret_file, else a "
        "key file made once beside the SQLite database (never kept in the database)",
    )
    token_secret_file: str = Field(
        default="", description="file holding the JWT signing secret (mode 0600)"
    )
    password_hash_n: int = Field(
        default=2**17,
        ge=2**10,
        description="scrypt cost N (r=8, p=1); 2^17 is OWASP's minimum. Lower only in tests",
    )
    stream_recheck_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="open streams re-check their key, session, user and membership this often",
    )
    access_token_ttl_s: float = Field(default=900, gt=0)
    refresh_token_ttl_s: float = Field(default=7 * 86400, gt=0)
    refresh_grace_s: float = Field(
        default=10,
        ge=0,
        le=60,
        description="the refresh token replaced last is answered with the same new pair this "
        "long after its rotation (tabs refreshing at once); later it counts as reuse",
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"],
        description="Host header values accepted; '*' accepts any",
    )
    trusted_proxies: list[IpOrNetwork] = Field(
        default_factory=list,
        description="reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed: a request whose TCP peer is one of them counts as "
        "coming from the last address in X-Forwarded-For that is not itself a trusted proxy. "
        "Empty: the headers are ignored and the client is the TCP peer. List only proxies "
        "that set or append the header, never networks where clients are",
    )
    cors_origins: list[str] = Field(default_factory=list, description="closed by default")
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # ---- limits on what callers hand in (see cadenza.domain.limits; docs/security.md) ----
    max_definition_nodes: int = Field(
        default=1_000, ge=1, description="nodes in one definition, map/loop bodies included"
    )
    max_value_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="size of instance inputs, vars, one node output or the instance outputs, "
        "as compact JSON; nesting is capped at 64 levels (not a setting)",
    )
    max_subprocess_depth: int = Field(
        default=10, ge=0, description="subprocess instances nested in one another"
    )
    rate_limit: str = Field(default="1200/minute", description="per API key, user or IP")
    login_rate_limit: str = Field(default="20/minute", description="login attempts per IP")
    redis_url: str = Field(default="", description="rate-limit storage; empty: in memory")
    metrics_token: str = Field(
        default="",
        description="bearer token (>= 32 characters) that /metrics accepts on every role's port "
        "(Prometheus scrapes with it); empty: /metrics on a service port is off, and the API's "
        "/metrics takes a viewer API key only",
    )
    mcp_proxy_url: str = Field(
        default="",
        description="the MCP proxy service (cadenza mcp-proxy) workers call tools through; "
        "empty: each worker holds its own MCP sessions",
    )
    mcp_proxy_token: str = Field(
        default="",
        description="service credential (>= 32 characters) between workers and the MCP proxy",
    )
    mcp_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="consecutive failed calls to one MCP server (unreachable, lost or timed out) "
        "that open its circuit, in the MCP proxy and in a process holding its own sessions; an "
        "open circuit refuses calls until a trial call succeeds",
    )
    mcp_breaker_reset_s: float = Field(
        default=30.0,
        gt=0,
        description="how long an open MCP server circuit refuses calls before one trial call",
    )
    mcp_call_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="timeout of one MCP tool call attempt in the MCP proxy when the caller "
        "sets none (workers send their node's timeout, 30 s by default)",
    )
    bus_url: str = Field(
        default="memory://",
        description="event bus between processes: memory:// (one process), redis://host:port/db "
        "(Redis Streams) or kafka://host:port[,host:port] (Kafka); see docs/architecture.md",
    )
    bus_relay_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="with a bus that crosses processes: how often the outbox relay looks for "
        "rows a crashed process left (it also runs right after each local commit)",
    )
    feed_bus_poll_s: float = Field(
        default=5.0,
        gt=0,
        description="with a bus that crosses processes: the live feed's fallback poll of the "
        "store (it reads at once on any bus message); the in-process bus polls every second",
    )
    feed_gap_wait_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how long the live feed waits for a missing feed id (a commit that took "
        "its id but is not visible yet) before moving past it; a commit slower than this is "
        "kept in history but not streamed live (a warning says so); a rollback holds live "
        "streams back this long",
    )
    cache_url: str = Field(
        default="",
        description="shared cache of definition versions and agent lists (redis://host:port/db); "
        "empty: redis_url if set, else none (each process reads the database). A separate "
        "URL lets the cache use an evicting Redis (allkeys-lru) that rate limits must not use",
    )
    cache_max_value_bytes: int = Field(
        default=1_048_576, gt=0, description="larger values are not put in the shared cache"
    )
    cache_refresh_s: float | None = Field(
        default=None,
        gt=0,
        description="how long a process keeps the agent list and latest-version pointers "
        "without being told of a change; None: 1 s on the memory bus (changes made by other "
        "processes are not announced), 60 s on Redis/Kafka (changes are announced on the bus)",
    )
    otlp_endpoint: str = Field(default="", description="OTLP/HTTP traces endpoint; empty: off")
    trace_engine: bool | None = Field(
        default=None,
        description="instance and task spans; None: only when traces are exported "
        "(otlp_endpoint), since they cost ~15% of the engine's throughput",
    )
    log_json: bool = True
    shutdown_grace_s: float = Field(
        default=20.0, ge=0, description="on SIGTERM, running tasks get this long to finish"
    )
    # ---- retention (see docs/retention.md) ----
    retention_finished_s: float | None = Field(
        default=None,
        ge=60,
        description="system-wide default: completed and cancelled instances, with their "
        "events, tasks, timers, feed and outbox rows and assignments, are deleted this many "
        "seconds after they finished; None keeps them (a workspace's own policy replaces it)",
    )
    retention_failed_s: float | None = Field(
        default=None,
        ge=60,
        description="the same for failed instances; None keeps them; at least retention_finished_s",
    )
    retention_interval_s: float = Field(
        default=300.0, gt=0, description="how often the retention job runs (lease 'retention')"
    )
    retention_batch: int = Field(
        default=500, ge=1, le=5000, description="instances deleted per transaction, with their rows"
    )
    retention_pause_s: float = Field(
        default=0.05, ge=0, description="pause of the retention job between two batches"
    )
    audit_retention_s: float | None = Field(
        default=None,
        ge=86400,
        description="audit rows are deleted this many seconds after they were written, by the "
        "retention job (at least a day); None keeps them (docs/audit.md)",
    )
    # ---- workspace deletion (see docs/workspaces.md) ----
    workspace_deletion_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="how often the workspace-deletion job (lease 'workspace-deletion') looks "
        "for deletions requested through another process (its own process wakes it at once)",
    )
    workspace_deletion_batch: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="instances (with their rows), or rows of one other table, deleted per "
        "transaction when a workspace is deleted",
    )
    workspace_deletion_pause_s: float = Field(
        default=0.05, ge=0, description="pause of the workspace-deletion job between two batches"
    )
    # ---- payload offload (see docs/payloads.md) ----
    payload_offload_bytes: int = Field(
        default=65_536,
        ge=0,
        description="a stored payload (inputs, outputs, errors, task details and model "
        "messages, event fields) larger than this many bytes of JSON goes to the blob store "
        "and its row keeps a marker; 0 never offloads",
    )
    blob_url: str = Field(
        default="",
        description="where offloaded payloads live: file:///path or s3://bucket/prefix; empty: "
        "blob_dir, else a directory next to the SQLite database ('<db>.blobs')",
    )
    blob_dir: str = Field(
        default="", description="local directory of offloaded payloads (when blob_url is empty)"
    )
    blob_endpoint: str = Field(
        default="",
        description="S3-compatible endpoint URL (MinIO, Ceph, R2...); empty: AWS. Credentials "
        "only from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or a role)",
    )
    blob_region: str = Field(default="", description="S3 region; empty: the AWS default chain")
    # ---- workspace secrets (see docs/security.md) ----
    secrets_key: str = Field(
        default="",
        description="keys sealing workspace secrets, comma-separated, the first seals",
    )
    secrets_key_file: str = Field(
        default="",
        description="file with those keys, one a line; neither set on SQLite: a file is "
        "generated next to the database (mode 0600)",
    )
    # ---- PII redaction (docs/pii.md) ----
    redaction_refresh_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how long a process keeps the workspaces' redaction rules without being "
        "told of a change (changes are announced on the bus; this bounds a lost message)",
    )
    # ---- workspace quotas: system-wide defaults, None = unlimited (docs/quotas.md) ----
    quota_max_running: int | None = Field(
        default=None, ge=0, le=10**9, description="instances running at once per workspace"
    )
    quota_starts_per_minute: int | None = Field(
        default=None, ge=0, le=10**9, description="instance starts per workspace per UTC minute"
    )
    quota_tokens_per_day: int | None = Field(
        default=None,
        ge=0,
        description="model tokens (prompt + completion) per workspace per UTC day",
    )
    quota_tokens_per_month: int | None = Field(
        default=None, ge=0, description="model tokens per workspace per UTC calendar month"
    )
    quota_cost_per_day: float | None = Field(
        default=None, ge=0, description="model cost (price table units) per workspace per UTC day"
    )
    quota_cost_per_month: float | None = Field(
        default=None, ge=0, description="model cost per workspace per UTC calendar month"
    )
    quota_turn_reserve_tokens: int = Field(
        default=1024,
        ge=1,
        description="tokens a model turn without max_tokens reserves against a token or cost "
        "budget before it starts (a turn that does not fit is not started)",
    )
    quota_limits_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="how long a process keeps a workspace's effective limits before reading "
        "them again; a change through the API is applied at once by its process and, over a "
        "Redis/Kafka bus, by the others; 0 reads them at every start and model turn",
    )
    quota_usage_flush_s: float = Field(
        default=1.0,
        ge=0,
        description="usage of model turns in workspaces without a token or cost budget is "
        "summed in the process and written this often (0: one write per turn); GET .../usage "
        "lags by up to this much for turns of other processes",
    )
