"""``cadenza config`` against a running API: providers set from a key in stdin or a shell
variable (never argv), listed without it, deleted; live settings set and reset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.api.harness import ADMIN_PASSWORD, serve
from tests.e2e.test_audit_cli import cadenza
from tests.fakes.openai_server import FakeOpenAIServer

KEY = "sk-cli-Key-from-stdin-9"


@pytest.mark.asyncio
async def test_config_commands(tmp_path: Path) -> None:
    async with (
        FakeOpenAIServer() as fake,
        serve(f"sqlite:///{tmp_path / 'cli.db'}", config_allowed_hosts=["127.0.0.1"]) as srv,
    ):
        code, _, err = await cadenza(
            srv, tmp_path, "login", "--password-stdin", stdin=ADMIN_PASSWORD + "\n"
        )
        assert code == 0, err
        args = ["config", "providers", "set", "cli-p", "--base-url", fake.base_url]
        code, out, err = await cadenza(
            srv, tmp_path, *args, "--default-model", "fake-small", "--api-key-stdin", stdin=KEY
        )
        assert code == 0, err
        assert "cli-p" in out
        assert "key" in out
        code, out, err = await cadenza(srv, tmp_path, "config", "providers", "list", "--json")
        assert code == 0, err
        rows = {r["name"]: r for r in json.loads(out)}
        assert rows["cli-p"]["has_api_key"] is True
        assert rows["offline"]["source"] == "environment"
        assert KEY not in out
        stored = await srv.admin.get("/api/v1/audit?action=config.provider.put")
        assert KEY not in json.dumps(stored.body)
        code, _, err = await cadenza(srv, tmp_path, "config", "providers", "delete", "offline")
        assert code == 2
        assert "read-only" in err
        code, _, err = await cadenza(srv, tmp_path, "config", "providers", "delete", "cli-p")
        assert code == 0, err
        code, out, err = await cadenza(
            srv, tmp_path, "config", "settings", "set", "mcp_call_timeout_s", "12.5"
        )
        assert code == 0, err
        assert "database" in out
        code, out, err = await cadenza(srv, tmp_path, "config", "settings", "list", "--json")
        values = {r["name"]: (r["value"], r["source"]) for r in json.loads(out)}
        assert values["mcp_call_timeout_s"] == (12.5, "database")
        code, _, err = await cadenza(
            srv, tmp_path, "config", "settings", "delete", "mcp_call_timeout_s"
        )
        assert code == 0, err
