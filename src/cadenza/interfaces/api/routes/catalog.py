"""The node-type catalog and the definition JSON Schema: what the designer renders from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from cadenza.application.identity import Permission
from cadenza.domain.nodetypes import NODE_TYPES
from cadenza.domain.schema import definition_json_schema
from cadenza.interfaces.api.guard import Caller

router = APIRouter(prefix="/api/v1", tags=["catalog"])


class NodeTypeOut(BaseModel):
    name: str
    type_version: int
    execution: str
    description: str
    config_schema: dict[str, Any]
    ports: list[str]
    dynamic_ports: bool
    has_body: bool
    retryable: bool


@router.get("/node-types")
async def node_types(p: Caller) -> list[NodeTypeOut]:
    """Every node type with its ports and the JSON Schema of its config."""
    p.require(Permission.READ)
    return [
        NodeTypeOut(
            name=t.name,
            type_version=t.type_version,
            execution=t.execution.value,
            description=t.description,
            config_schema=t.config_schema,
            ports=list(t.ports),
            dynamic_ports=t.dynamic_ports,
            has_body=t.has_body,
            retryable=t.retryable,
        )
        for t in NODE_TYPES.values()
    ]


@router.get("/schema/definition")
async def definition_schema(p: Caller) -> dict[str, Any]:
    """The JSON Schema of a ``cadenza/v1`` document."""
    p.require(Permission.READ)
    return definition_json_schema()
