"""GraphQL enum types: the domain's own status enums registered with strawberry, never re-listed.

An argument names a value by its member name (``status: RUNNING``), the way GraphQL enums are
written, and strawberry hands the resolver the domain member itself. The ``status`` fields of
instances, tasks, versions and events stay lowercase strings (the enums' values) as clients
already read them; only ``Agent.status`` has always been the enum.
"""

from __future__ import annotations

from enum import StrEnum

import strawberry

from cadenza.domain.agent import AgentStatus
from cadenza.domain.status import InstanceStatus, TaskStatus

# every GraphQL enum built from a domain enum (a test checks each against the schema)
ENUMS: tuple[type[StrEnum], ...] = (InstanceStatus, TaskStatus, AgentStatus)
for _enum in ENUMS:
    strawberry.enum(_enum, description=_enum.__doc__)


def one_of(enum: type[StrEnum]) -> str:
    """The values of ``enum`` as a field's description reads them: ``a, b or c``."""
    values = [m.value for m in enum]
    return f"{', '.join(values[:-1])} or {values[-1]}"


__all__ = ["ENUMS", "AgentStatus", "InstanceStatus", "TaskStatus", "one_of"]
