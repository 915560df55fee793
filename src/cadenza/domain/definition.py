"""The ``cadenza/v1`` process definition model (already validated; see ``validation``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cadenza.domain.json import JSON, JSONObject

SCHEMA_ID = "cadenza/v1"
DEFAULT_PORT = "out"
ERROR_PORT = "error"


class DefinitionStatus(StrEnum):
    """The lifecycle of a process version: draft, then published (immutable), then archived."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


_D = DefinitionStatus
# Staying in a status is a no-op for the caller, not a transition, so no status lists itself.
DEFINITION_TRANSITIONS: Mapping[DefinitionStatus, frozenset[DefinitionStatus]] = {
    _D.DRAFT: frozenset({_D.PUBLISHED, _D.ARCHIVED}),
    _D.PUBLISHED: frozenset({_D.ARCHIVED}),
    _D.ARCHIVED: frozenset(),
}


class OnError(StrEnum):
    FAIL = "fail"
    CONTINUE = "continue"
    BRANCH = "branch"


class Join(StrEnum):
    ALL = "all"
    ANY = "any"


class Backoff(StrEnum):
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: Backoff = Backoff.EXPONENTIAL
    initial_s: float = 1.0
    max_s: float = 30.0

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if self.backoff is Backoff.FIXED:
            return self.initial_s
        return float(min(self.max_s, self.initial_s * (2 ** (attempt - 1))))


@dataclass(frozen=True)
class Edge:
    source: str
    port: str
    target: str


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    config: JSONObject = field(default_factory=dict)
    name: str = ""
    type_version: int = 1
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float | None = None
    on_error: OnError = OnError.FAIL
    default: JSON = None
    join: Join = Join.ALL
    requires: tuple[str, ...] = ()
    body: Graph | None = None


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


@dataclass(frozen=True)
class ProcessSettings:
    timeout_s: float | None = None
    max_concurrency: int | None = None
    budget: JSONObject = field(default_factory=dict)  # {tokens: int, cost: number}


@dataclass(frozen=True)
class Definition:
    id: str
    name: str
    graph: Graph
    inputs: JSONObject = field(default_factory=dict)
    outputs: JSONObject = field(default_factory=dict)
    vars: JSONObject = field(default_factory=dict)
    settings: ProcessSettings = ProcessSettings()
    description: str = ""
    document: JSONObject = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return content_hash(self.document)


def semantic_part(document: Mapping[str, JSON]) -> JSONObject:
    """The part of a document that defines behaviour: everything but designer layout and prose."""
    return {k: v for k, v in document.items() if k not in ("layout", "description", "name")}


def content_hash(document: Mapping[str, JSON]) -> str:
    text = json.dumps(semantic_part(document), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
