"""Edges of the system: CLI views, and later the HTTP API and the MCP server."""
