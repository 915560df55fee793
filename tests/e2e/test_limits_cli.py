"""``cadenza quotas``, ``cadenza retention`` and ``cadenza legal-holds`` against a running
API: values shown, changes merged into what is set, the API's 422 texts printed as they are,
and the parsing of ages and limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from tests.api.harness import ADMIN_PASSWORD, Server, document, serve
from tests.e2e.test_audit_cli import cadenza

from cadenza.entrypoints.cli_quotas import merged, parse_limit
from cadenza.entrypoints.cli_retention import parse_age, show_age


async def signed_in(srv: Server, home: Path) -> None:
    code, _, err = await cadenza(
        srv, home, "login", "--password-stdin", stdin=ADMIN_PASSWORD + "\n"
    )
    assert code == 0, err


@pytest.mark.asyncio
async def test_quotas_get_and_set(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'cli.db'}") as srv:
        await signed_in(srv, tmp_path)
        code, out, err = await cadenza(srv, tmp_path, "quotas", "get")
        assert code == 0, err
        assert out.splitlines()[0] == "workspace default"
        assert [line.split() for line in out.splitlines() if line.startswith("max_running")] == [
            ["max_running", "-", "-", "0"]
        ]

        code, _, err = await cadenza(srv, tmp_path, "quotas", "set", "--max-running", "-1")
        assert code == 2
        assert "HTTP 422" in err
        assert "max_running: Input should be greater than or equal to 0" in err
        code, _, err = await cadenza(srv, tmp_path, "quotas", "set", "--cost-per-day", "lots")
        assert code == 2
        assert "cost_per_day: Input should be a valid number" in err
        code, _, err = await cadenza(srv, tmp_path, "quotas", "set")
        assert code == 2
        assert "nothing to change" in err

        args = ["quotas", "set", "--max-running", "5", "--cost-per-day", "2.5"]
        code, out, err = await cadenza(srv, tmp_path, *args)
        assert code == 0, err
        assert ["max_running", "5", "5", "0"] in [line.split() for line in out.splitlines()]
        code, out, err = await cadenza(
            srv, tmp_path, "quotas", "set", "--tokens-per-day", "1000", "--json"
        )
        assert code == 0, err
        own = json.loads(out)["quotas"]["own"]
        assert (own["max_running"], own["cost_per_day"], own["tokens_per_day"]) == (5, 2.5, 1000)
        assert json.loads(out)["usage"]["today"]["tokens"] == 0

        code, out, err = await cadenza(srv, tmp_path, "quotas", "set", "--max-running", "none")
        assert code == 0, err
        own = (await srv.admin.get("/api/v1/workspaces/default/quotas")).json()["own"]
        assert (own["max_running"], own["cost_per_day"]) == (None, 2.5)
        code, out, err = await cadenza(srv, tmp_path, "quotas", "set", "--reset")
        assert code == 0, err
        own = (await srv.admin.get("/api/v1/workspaces/default/quotas")).json()["own"]
        assert set(own.values()) == {None}
        audited = (await srv.admin.get("/api/v1/audit?action=quota.set")).json()["items"]
        assert len(audited) == 4  # the refused ones changed nothing


@pytest.mark.asyncio
async def test_retention_policy_and_legal_holds(tmp_path: Path) -> None:
    async with serve(f"sqlite:///{tmp_path / 'cli.db'}") as srv:
        await signed_in(srv, tmp_path)
        code, out, err = await cadenza(srv, tmp_path, "retention", "get")
        assert code == 0, err
        assert out.splitlines() == [
            "workspace default: the server's default",
            "finished  keep (never deleted)",
            "failed    keep (never deleted)",
        ]
        code, _, err = await cadenza(srv, tmp_path, "retention", "set", "--finished", "10s")
        assert code == 2
        assert "body.finished_s: Input should be greater than or equal to 60" in err
        args = ["retention", "set", "--finished", "30d", "--failed", "7d"]
        code, _, err = await cadenza(srv, tmp_path, *args)
        assert code == 2
        assert "failed_s must be null or at least finished_s" in err
        code, _, err = await cadenza(srv, tmp_path, "retention", "set", "--failed", "soon")
        assert code == 2
        assert "use 30d, 12h, 90m" in err

        args = ["retention", "set", "--finished", "30d", "--failed", "90d"]
        code, out, err = await cadenza(srv, tmp_path, *args)
        assert code == 0, err
        assert out.splitlines()[0].startswith("workspace default: its own policy (set by user:")
        assert out.splitlines()[1:] == ["finished  30d (2592000 s)", "failed    90d (7776000 s)"]
        code, out, err = await cadenza(srv, tmp_path, "retention", "set", "--failed", "keep")
        assert code == 0, err
        policy = (await srv.admin.get("/api/v1/workspaces/default/retention")).json()
        assert (policy["finished_s"], policy["failed_s"]) == (2_592_000, None)  # merged
        code, _, err = await cadenza(srv, tmp_path, "retention", "reset")
        assert code == 0, err
        assert "the server's default policy applies" in err
        policy = (await srv.admin.get("/api/v1/workspaces/default/retention")).json()
        assert policy["source"] == "default"

        body = {"document": document("cli-held"), "publish": True}
        assert (await srv.admin.post("/api/v1/processes/definitions", body)).status == 201
        started = await srv.admin.post(
            "/api/v1/processes/instances", {"process_id": "cli-held", "inputs": {"name": "x"}}
        )
        iid = started.json()["id"]
        code, out, err = await cadenza(srv, tmp_path, "legal-holds", "list")
        assert (code, out) == (0, "")
        assert "no instance is under a legal hold" in err
        code, out, err = await cadenza(
            srv, tmp_path, "legal-holds", "set", iid, "--reason", "x" * 501
        )
        assert code == 2
        assert "reason: String should have at most 500 characters" in err
        args = ["legal-holds", "set", iid, "--reason", "case 42"]
        code, out, err = await cadenza(srv, tmp_path, *args)
        assert code == 0, err
        assert out.split()[0] == iid
        assert out.rstrip().endswith("case 42")
        code, out, err = await cadenza(srv, tmp_path, "legal-holds", "list", "--json")
        assert code == 0, err
        assert [(h["instance_id"], h["reason"]) for h in json.loads(out)] == [(iid, "case 42")]
        code, _, err = await cadenza(srv, tmp_path, "legal-holds", "clear", iid)
        assert code == 0, err
        held = (await srv.admin.get(f"/api/v1/processes/instances/{iid}/legal-hold")).json()
        assert held["held"] is False
        code, _, err = await cadenza(srv, tmp_path, "legal-holds", "set", "no-such-instance")
        assert code == 2
        assert "HTTP 404" in err


def test_limits_and_ages_are_parsed_and_shown() -> None:
    assert [parse_limit(t) for t in ("none", "Default", "12", "2.5", "-1", "lots")] == [
        None,
        None,
        12,
        2.5,
        -1,
        "lots",
    ]
    own = {"max_running": 3, "cost_per_day": 1.5}
    assert merged(own, {"max_running": None, "tokens_per_day": "10"}, reset=False) == {
        "max_running": 3,
        "starts_per_minute": None,
        "tokens_per_day": 10,
        "tokens_per_month": None,
        "cost_per_day": 1.5,
        "cost_per_month": None,
    }
    assert set(merged(own, {"tokens_per_day": "10"}, reset=True).values()) == {None, 10}
    assert [parse_age(t, "--finished") for t in ("30d", "12h", "90m", "75s", "600", "1.5h")] == [
        2_592_000,
        43_200,
        5_400,
        75,
        600,
        5_400,
    ]
    assert parse_age("keep", "--failed") is None
    with pytest.raises(typer.BadParameter, match="use 30d, 12h, 90m"):
        parse_age("3 weeks", "--failed")
    assert [show_age(s) for s in (86_400 * 30, 7_200, 90, 61.5, None)] == [
        "30d (2592000 s)",
        "2h (7200 s)",
        "90 s",
        "61.5 s",
        "keep (never deleted)",
    ]
