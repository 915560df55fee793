"""Canaries for the PII tests: distinct values of every kind the detectors know, a process
that carries them through every input/output/error path, a local HTTP peer that records
what it receives (the real values) and echoes them back, and a scan of a database's rows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.net import any_route_server

from cadenza.domain.json import JSONObject
from cadenza.domain.pii import CustomRule, RedactionRules

CANARIES = {
    "email": "canary.alice.7q@example-pii.org",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "key": "sk-canaryKEY0123456789abcdefXYZ",
    "custom": "EMP-481516",
}
# the forms a value may take in a database or a log: as is, JSON-escaped, and without spaces
FORMS = {
    f"{name}{i}": form
    for name, value in CANARIES.items()
    for i, form in enumerate({value, json.dumps(value)[1:-1], value.replace(" ", "")})
}
RULES = RedactionRules(True, custom=(CustomRule("employee", r"EMP-[0-9]{6}", "[employee]"),))
ALL_TEXT = " ".join(CANARIES.values())


def hits(blob: bytes | str) -> list[str]:
    """The canaries (any of their forms) found in ``blob``."""
    data = blob if isinstance(blob, bytes) else blob.encode()
    return sorted({k for k, form in FORMS.items() if form.encode() in data})


@dataclass
class Peer:
    url: str = ""
    received: list[JSONObject] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.received.append(body)
        if request.path.endswith("/fail"):  # the error message quotes the body back
            return web.Response(status=400, text=f"refused: {json.dumps(body)}")
        return web.json_response({"echo": body})


@asynccontextmanager
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    async with any_route_server(p.handle) as p.url:
        yield p


def process(peer_url: str) -> JSONObject:
    """Every path a canary can take: instance inputs; an approval's title (task detail) and
    its decision's comment (a signal payload); a transform's output (also computing the
    e-mail's length, which only the real value gives); an http node's request and
    echoed response; a failing http node's error (kept by ``on_error: continue``); an llm
    node's prompt and answer (the offline provider echoes it); an agent's model messages
    (journaled steps); the instance's outputs."""
    everything = "{{ inputs.text }}"
    return {
        "schema": "cadenza/v1",
        "id": "pii-canaries",
        "name": "canaries",
        "outputs": {
            "text": everything,
            "email_len": "{{ nodes.compute.output.email_len }}",
            "echo": "{{ nodes.call.output.body.echo.text }}",
            "answer": "{{ nodes.say.output.text }}",
            "comment": "{{ nodes.ask.output.comment }}",
        },
        "nodes": [
            {"id": "ask", "type": "approval", "config": {"title": f"OK for {everything}?"}},
            {
                "id": "compute",
                "type": "transform",
                "config": {
                    "output": {
                        "email_len": "{{ inputs.email | length }}",
                        "copy": everything,
                    }
                },
            },
            {
                "id": "call",
                "type": "http",
                "config": {"method": "POST", "url": f"{peer_url}/ok", "json": {"text": everything}},
            },
            {
                "id": "bad",
                "type": "http",
                "config": {"method": "POST", "url": f"{peer_url}/fail", "json": {"t": everything}},
                "on_error": "continue",
                "default": {"failed": True},
            },
            {"id": "say", "type": "llm", "config": {"prompt": f"Repeat: {everything}"}},
            {
                "id": "think",
                "type": "agent",
                "config": {"instructions": "Answer briefly.", "input": everything, "max_steps": 2},
            },
        ],
        "edges": [
            {"from": "ask", "to": "compute"},
            {"from": "compute", "to": "call"},
            {"from": "call", "to": "bad"},
            {"from": "bad", "to": "say"},
            {"from": "say", "to": "think"},
        ],
    }


def failing(peer_url: str) -> JSONObject:
    """An instance that fails: its error (instance and task) quotes the canaries."""
    return {
        "schema": "cadenza/v1",
        "id": "pii-fails",
        "name": "fails",
        "nodes": [
            {
                "id": "bad",
                "type": "http",
                "config": {
                    "method": "POST",
                    "url": f"{peer_url}/fail",
                    "json": {"t": "{{ inputs.text }}"},
                },
            }
        ],
        "edges": [],
    }


BIG = f"{ALL_TEXT} {'filler text ' * 8000} {ALL_TEXT}"  # ~96 KB: over the offload threshold


def inputs(big: bool = False) -> JSONObject:
    """Every canary alone and together; with ``big``, a value large enough to be offloaded to
    a blob too."""
    found: JSONObject = {"text": ALL_TEXT, "email": CANARIES["email"], **CANARIES}
    if big:
        found["big"] = BIG
    return found


async def scan_rows(engine: AsyncEngine, tables: Iterable[sa.Table]) -> dict[str, list[str]]:
    """Every canary found in any column of any row of ``tables``, by ``table.column``."""
    found: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for table in tables:
            for row in await conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    text = value if isinstance(value, str | bytes) else json.dumps(_plain(value))
                    if got := hits(text):
                        found.setdefault(f"{table.name}.{column}", []).extend(got)
    return found


def _plain(value: Any) -> Any:
    return value if isinstance(value, dict | list | int | float | bool | None) else str(value)
