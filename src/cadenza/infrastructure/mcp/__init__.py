"""The MCP proxy: pooled sessions to MCP servers behind the ``ToolGateway`` port."""

from cadenza.infrastructure.mcp.catalog import Pin, definition_hash
from cadenza.infrastructure.mcp.config import HttpServer, ServerConfig, StdioServer
from cadenza.infrastructure.mcp.gateway import McpGateway
from cadenza.infrastructure.mcp.policy import ToolPolicy, needs_approval, retry_allowed

__all__ = [
    "HttpServer",
    "McpGateway",
    "Pin",
    "ServerConfig",
    "StdioServer",
    "ToolPolicy",
    "definition_hash",
    "needs_approval",
    "retry_allowed",
]
