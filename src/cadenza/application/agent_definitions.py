"""Agent definitions: what makes one valid, when a name is taken, and where they are kept.

The rules a registration or an update must pass (a slug name, a capacity and weight >= 1,
the config keys of the agent's type, http(s) URLs), the errors they raise, the uniqueness of
names within what one workspace sees, and ``AgentRepository``, the port the SQL and in-memory
repositories implement. ``agents.AgentRegistry`` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from cadenza.domain.agent import Agent, AgentType
from cadenza.domain.json import JSONObject

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CONFIG_KEYS: dict[AgentType, tuple[frozenset[str], frozenset[str]]] = {  # (required, optional)
    AgentType.LLM: (frozenset({"provider", "model"}), frozenset()),
    AgentType.MCP: (frozenset({"server"}), frozenset({"tool"})),
    AgentType.HTTP: (frozenset({"url"}), frozenset({"health_url"})),
    AgentType.WORKER: (frozenset(), frozenset()),
}


class AgentError(ValueError):
    """A registration or update is invalid; the message says why."""


class AgentNotFound(LookupError):
    pass


class AgentConflict(AgentError):
    """Another agent already has this name."""


def name_taken(new: Agent, other: Agent) -> bool:
    """Whether ``other`` keeps ``new`` from having its name.

    Names are unique within what one workspace sees: its own agents and the shared ones.
    A workspace agent cannot take the name of another agent of its workspace or of a shared
    agent (shared agents are listed in every workspace, so the 409 reveals nothing); a
    shared agent cannot take the name of another shared agent. Agents of other workspaces
    never clash, so a 409 tells nothing about them. A shared agent registered after a
    workspace agent of the same name is allowed: that workspace lists both, told apart by
    ``shared`` and id (nothing resolves an agent by name: nodes select by capabilities).
    """
    if new.name != other.name or new.id == other.id:
        return False
    return other.workspace_id == new.workspace_id or other.workspace_id is None


def conflict(agent: Agent) -> AgentConflict:
    """The error for ``agent`` whose name is taken."""
    who = "a shared agent" if agent.workspace_id is None else "an agent of this workspace"
    if agent.workspace_id is not None:
        who += " or a shared agent"
    return AgentConflict(f"{who} is already named {agent.name!r}")


class AgentRepository(Protocol):
    """Where agent definitions and statuses are kept (the load is not: ``agent_local``)."""

    async def add(self, agent: Agent) -> None:
        """Raises AgentConflict when the name is taken (``name_taken``)."""
        ...

    async def update(self, agent: Agent) -> None: ...

    async def remove(self, agent_id: str) -> None: ...

    async def get(self, agent_id: str) -> Agent | None: ...

    async def list(self) -> list[Agent]: ...


def validate(
    name: str, type: AgentType, capabilities: Iterable[str], config: JSONObject, capacity: int
) -> None:
    """Raise AgentError unless the fields make a valid agent of ``type``."""
    if not _NAME.match(name):
        raise AgentError(
            f"agent name {name!r} must be a slug: lower-case letters, digits, '-' or '_'"
        )
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise AgentError(f"agent capacity must be an integer >= 1, not {capacity!r}")
    if any(not isinstance(c, str) or not c for c in capabilities):
        raise AgentError("agent capabilities must be non-empty strings")
    required, optional = _CONFIG_KEYS[type]
    missing = sorted(required - config.keys())
    unknown = sorted(config.keys() - required - optional)
    if missing or unknown:
        allowed = ", ".join(sorted(required | optional)) or "nothing"
        raise AgentError(
            f"{type} agent config: missing [{', '.join(missing)}], unknown "
            f"[{', '.join(unknown)}] (accepts {allowed})"
        )
    for key, value in config.items():
        if not isinstance(value, str) or not value:
            raise AgentError(f"{type} agent config.{key} must be a non-empty string")
        if key.endswith("url") and urlsplit(value).scheme not in ("http", "https"):
            raise AgentError(f"{type} agent config.{key} must be an http(s) URL, not {value!r}")


def capability_set(capabilities: Iterable[str]) -> frozenset[str]:
    """The capabilities as a set (AgentError for a lone string)."""
    if isinstance(capabilities, str):  # a lone name would become a set of letters
        raise AgentError("agent capabilities must be a list of names, not a string")
    return frozenset(capabilities)


def check_weight(weight: int) -> None:
    """AgentError unless ``weight`` is an integer >= 1."""
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise AgentError(f"agent weight must be an integer >= 1, not {weight!r}")
