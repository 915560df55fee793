"""The PII stage of the payload codec and the rules behind it, with a real key ring: sealed
markers on write, the original for the engine, the redacted value for readers, the paths
recorded; nothing touched when nothing is found or the workspace does not redact; the rules'
cache (reload, invalidation, a failed reload keeps what it had) and the use cases (admins only,
refusals, the key needed to turn it on)."""

from __future__ import annotations

import json

import pytest

from cadenza.application.payloads import ENGINE, READER, EncodeBatch, PayloadCodec, PayloadSlot
from cadenza.application.pii_codec import SealStage, redacted_copy, redactions
from cadenza.application.pii_rules import KeyNeeded, Redaction, RulesCache, StoredRules
from cadenza.application.roles import Forbidden, Principal, Role
from cadenza.application.secrets import SecretsUnavailable
from cadenza.domain.json import JSON
from cadenza.domain.pii import CustomRule, Redacted, RedactionRules, RulesInvalid
from cadenza.infrastructure.redaction_memory import MemoryRedactionStore
from cadenza.infrastructure.secrets_crypto import KeyRing, new_key, parse_keys

EMAIL = "jane.doe@example.org"
VALUE: JSON = {"customer": {"email": EMAIL, "name": "Jane"}, "n": 3, "tags": ["x", EMAIL]}


class Clock:
    def __init__(self) -> None:
        self.at = 100.0

    def now(self) -> float:
        return self.at


class FailingStore(MemoryRedactionStore):
    fail = False

    async def all_rules(self) -> list[StoredRules]:
        if self.fail:
            raise OSError("database away")
        return await super().all_rules()


def ring() -> KeyRing:
    return KeyRing(parse_keys(new_key(), "test"))


async def cache_with(rules: RedactionRules, ws: str = "ws") -> RulesCache:
    store = MemoryRedactionStore()
    await store.put_rules(StoredRules(ws, rules, 1.0, "user:u"))
    cache = RulesCache(store, Clock(), 5.0)
    await cache.fresh()
    return cache


async def test_a_value_with_pii_is_sealed_opened_for_the_engine_and_redacted_for_readers() -> None:
    stage = SealStage(await cache_with(RedactionRules(True)), ring())
    codec = PayloadCodec([stage])
    slot = PayloadSlot("ws", "i-1", "instances.inputs")
    stored = codec.encode(slot, VALUE, EncodeBatch())
    assert EMAIL not in json.dumps(stored)
    assert redactions(stored) == [
        Redacted("$.customer.email", ("email",)),
        Redacted("$.tags[1]", ("email",)),
    ]
    journal_slot = PayloadSlot("", "i-1", "events.InstanceStarted.inputs")  # replays know no ws
    assert await codec.decode(journal_slot, stored, ENGINE) == VALUE
    shown = {"customer": {"email": "[email]", "name": "Jane"}, "n": 3, "tags": ["x", "[email]"]}
    assert await codec.decode(slot, stored, READER) == shown
    assert codec.view(slot, stored) == shown


async def test_text_columns_keep_text() -> None:
    codec = PayloadCodec([SealStage(await cache_with(RedactionRules(True)), ring())])
    slot = PayloadSlot("ws", "i-1", "tasks.error")
    stored = codec.encode_text(slot, f"mail {EMAIL} bounced", EncodeBatch())
    assert stored is not None
    assert stored.startswith("$cadenza:")
    assert EMAIL not in stored
    assert await codec.decode_text(slot, stored) == f"mail {EMAIL} bounced"
    assert codec.view_text(slot, stored) == "mail [email] bounced"


async def test_nothing_found_or_not_redacting_leaves_the_value_as_it_is() -> None:
    stage = SealStage(await cache_with(RedactionRules(True)), ring())
    plain: JSON = {"order": "1234567890123", "at": "2026-12-02"}
    assert stage.encode(PayloadSlot("ws", "i", "f"), plain, EncodeBatch()) is plain
    assert stage.encode(PayloadSlot("other", "i", "f"), VALUE, EncodeBatch()) is VALUE
    off = SealStage(await cache_with(RedactionRules(False)), ring())
    assert off.encode(PayloadSlot("ws", "i", "f"), VALUE, EncodeBatch()) is VALUE


async def test_a_marker_moved_to_another_workspace_does_not_open() -> None:
    stage = SealStage(await cache_with(RedactionRules(True)), ring())
    stored = stage.encode(PayloadSlot("ws", "i", "f"), VALUE, EncodeBatch())
    assert isinstance(stored, dict)
    with pytest.raises(SecretsUnavailable):
        stage.open({**stored, "ws": "elsewhere"})


async def test_without_a_key_the_redacted_value_is_kept_and_never_the_original() -> None:
    stage = SealStage(await cache_with(RedactionRules(True)), KeyRing([]))
    stored = stage.encode(PayloadSlot("ws", "i", "f"), VALUE, EncodeBatch())
    assert isinstance(stored, dict)
    assert "sealed" not in stored
    assert EMAIL not in json.dumps(stored)
    assert await stage.decode(PayloadSlot("", "i", "f"), stored, ENGINE) == stored["shown"]


async def test_audit_summaries_are_redacted_with_the_workspace_rules() -> None:
    rules = RedactionRules(True, custom=(CustomRule("emp", "EMP-[0-9]{3}", ""),))
    cache = await cache_with(rules)
    summary: dict[str, JSON] = {"reason": f"{EMAIL} EMP-123"}
    assert redacted_copy(cache, "ws", summary) == {"reason": "[email] [emp]"}
    assert redacted_copy(cache, None, summary) == {"reason": "[email] EMP-123"}  # built-ins


async def test_the_cache_reloads_when_stale_or_invalidated_and_keeps_rules_on_failure() -> None:
    store, clock = FailingStore(), Clock()
    cache = RulesCache(store, clock, 5.0)
    await cache.fresh()
    assert not cache.any_enabled
    assert cache.builtin() is None
    await store.put_rules(StoredRules("ws", RedactionRules(True), 1.0, "user:u"))
    await cache.fresh()
    assert cache.scanner("ws") is None  # fresh for 5 s
    cache.invalidate()
    await cache.fresh()
    assert cache.scanner("ws") is not None
    assert cache.builtin() is not None
    store.fail = True
    clock.at += 10
    await cache.fresh()  # logged, not raised
    assert cache.scanner("ws") is not None


async def test_the_use_cases_check_the_caller_the_rules_and_the_key() -> None:
    store = MemoryRedactionStore()
    cache = RulesCache(store, Clock(), 5.0)
    announced: list[str] = []

    async def announce(ws: str) -> None:
        announced.append(ws)

    def no_key() -> None:
        raise KeyNeeded("no key")

    admin = Principal("ws", Role.ADMIN, user_id="u")
    service = Redaction(store, cache, Clock(), lambda: None, announce)
    with pytest.raises(Forbidden):
        await service.view(Principal("ws", Role.EDITOR, user_id="e"), "ws")
    assert (await service.view(admin, "ws")).rules == RedactionRules()
    bad = RedactionRules(True, custom=(CustomRule("x", "(a", ""),))
    with pytest.raises(RulesInvalid):
        await service.set(admin, "ws", bad)
    view = await service.set(admin, "ws", RedactionRules(True))
    assert view.updated_by == "user:u"
    assert announced == ["ws"]
    assert cache.scanner("ws") is not None  # applied by this process at once
    keyless = Redaction(store, cache, Clock(), no_key, announce)
    with pytest.raises(KeyNeeded):
        await keyless.set(admin, "ws", RedactionRules(True))
    await keyless.set(admin, "ws", RedactionRules(False))  # turning it off needs no key
