"""The Auditor without I/O: entries from the caller and the request, scrubbed summaries, the
fallback append, the tenant scope of reads."""

from __future__ import annotations

import pytest

from cadenza.application.audit import (
    MAX_SUMMARY_CHARS,
    NEW_ID,
    ORIGIN,
    Auditor,
    Origin,
    Target,
    created,
    scrub,
    take_pending,
)
from cadenza.application.audit_ports import AuditQuery
from cadenza.application.identity import Forbidden, Principal, Role
from cadenza.domain.json import JSONObject
from cadenza.infrastructure.audit_memory import MemoryAuditLog


class Clock:
    def now(self) -> float:
        return 42.0


def test_scrub_drops_secret_keys_at_every_depth_and_cuts_long_strings() -> None:
    value: JSONObject = {
        "name": "k",
        "password": "p",
        "nested": [{"api_key": "x", "ok": 1, "Token_2": "t"}],
        "secretName": "s",
        "long": "x" * (MAX_SUMMARY_CHARS + 10),
    }
    assert scrub(value) == {
        "name": "k",
        "nested": [{"ok": 1}],
        "long": "x" * MAX_SUMMARY_CHARS + "…",
    }


async def test_an_entry_carries_the_caller_and_the_request() -> None:
    auditor = Auditor(MemoryAuditLog(), Clock())
    token = ORIGIN.set(Origin("req-1", "10.0.0.9"))
    try:
        key = Principal("ws", Role.OPERATOR, key_id="k-1")
        entry = auditor.entry(key, "instance.cancel", Target("instance", "i-1"), after={"x": 1})
    finally:
        ORIGIN.reset(token)
    assert (entry.actor_type, entry.actor_id, entry.workspace_id) == ("key", "k-1", "ws")
    assert (entry.request_id, entry.client_ip, entry.at, entry.after) == (
        "req-1",
        "10.0.0.9",
        42.0,
        {"x": 1},
    )
    user = Principal("ws", Role.ADMIN, user_id="u-1", is_system_admin=True)
    system_row = auditor.entry(user, "user.create", Target("user", NEW_ID))
    assert (system_row.actor_type, system_row.workspace_id) == ("user", None)


async def test_a_change_nothing_took_is_appended_once_and_a_failed_one_not_at_all() -> None:
    log = MemoryAuditLog()
    counted: list[str] = []
    auditor = Auditor(log, Clock(), on_write=counted.append)
    p = Principal("ws", Role.ADMIN, user_id="u")
    async with auditor.act(p, "secret.put", Target("secret", "A")):
        pass
    with pytest.raises(RuntimeError):
        async with auditor.act(p, "secret.delete", Target("secret", "A")):
            raise RuntimeError("refused")
    async with auditor.act(p, "user.create", Target("user", NEW_ID)):
        taken = take_pending("u-new")
        assert take_pending("again") is None  # once
    assert taken is not None
    assert taken.target_id == "u-new"
    assert [e.action for e in log.rows] == ["secret.put"]  # the taken one is the store's to write
    assert counted == ["secret.put", "user.create"]


async def test_a_create_nothing_took_is_appended_with_the_id_it_created() -> None:
    """A start on a store whose engine does not take the row (``memory://``): the row is
    appended after, naming the new instance; a taken entry was named by its taker."""
    log = MemoryAuditLog()
    auditor = Auditor(log, Clock())
    p = Principal("ws", Role.OPERATOR, user_id="u")
    async with auditor.act(p, "instance.start", Target("instance", NEW_ID)):
        created("i-new")
    async with auditor.act(p, "instance.start", Target("instance", NEW_ID)):
        taken = take_pending("i-taken")
        created("i-other")  # too late: the taker named it
    assert taken is not None
    assert taken.target_id == "i-taken"
    assert [(e.action, e.target_id) for e in log.rows] == [("instance.start", "i-new")]


async def test_reads_are_scoped_to_the_callers_workspace_unless_system_admin() -> None:
    auditor = Auditor(MemoryAuditLog(), Clock())
    q = AuditQuery(scope="forged")
    editor = Principal("ws", Role.EDITOR, user_id="u")
    with pytest.raises(Forbidden):
        await auditor.query(editor, q)
    for ws in ("ws", "other"):
        admin = Principal(ws, Role.ADMIN, user_id="a")
        await auditor.record(auditor.entry(admin, "definition.save", Target("definition", ws)))
    admin = Principal("ws", Role.ADMIN, user_id="a")
    assert [e.target_id for e in await auditor.query(admin, q)] == ["ws"]
    root = Principal("ws", Role.ADMIN, user_id="r", is_system_admin=True)
    assert [e.target_id for e in await auditor.query(root, q)] == ["other", "ws"]
