"""CLI commands against a running server: login, apply, start, ps, logs.

The server is ``--server`` / ``CADENZA_SERVER`` (default http://127.0.0.1:8080). Credentials
are ``CADENZA_API_KEY``, or the tokens ``cadenza login`` keeps in
``~/.config/cadenza/credentials.json`` (mode 0600), refreshed when they expire.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from cadenza.domain.json import JSONObject

DEFAULT_SERVER = "http://127.0.0.1:8080"
_TERMINAL = {"InstanceCompleted", "InstanceFailed", "InstanceCancelled"}


class ClientError(Exception):
    """The server refused a request; the message carries its problem title and detail."""


def credentials_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "cadenza" / "credentials.json"


def _load_saved() -> dict[str, Any]:
    path = credentials_path()
    if not path.is_file():
        return {}
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def save_tokens(server: str, tokens: JSONObject) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    saved = _load_saved()
    saved[server] = {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(saved, f)
    return path


def _problem(status: int, body: str) -> ClientError:
    try:
        data = json.loads(body)
        detail = f"{data.get('title', 'error')}: {data.get('detail', '')}"
        errors = data.get("errors") or []
        detail += "".join(f"\n  - {e['path']}: {e['message']}" for e in errors[:20])
    except (ValueError, AttributeError, KeyError, TypeError):
        detail = body[:500]
    return ClientError(f"HTTP {status} {detail}")


@dataclass
class ApiClient:
    server: str
    session: aiohttp.ClientSession
    workspace: str | None = None
    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None

    @classmethod
    def configured(
        cls, session: aiohttp.ClientSession, server: str | None, workspace: str | None
    ) -> ApiClient:
        server = (server or os.environ.get("CADENZA_SERVER") or DEFAULT_SERVER).rstrip("/")
        saved = _load_saved().get(server, {})
        return cls(
            server,
            session,
            workspace or os.environ.get("CADENZA_WORKSPACE") or None,
            os.environ.get("CADENZA_API_KEY") or None,
            saved.get("access_token"),
            saved.get("refresh_token"),
        )

    def _headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        credential = self.api_key or self.access_token
        if credential:
            h["Authorization"] = f"Bearer {credential}"
        if self.workspace:
            h["X-Workspace"] = self.workspace
        return h

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        for attempt in (1, 2):
            async with self.session.request(
                method, self.server + path, json=body, headers=self._headers(), params=params
            ) as r:
                text = await r.text()
                if r.status == 401 and attempt == 1 and await self._refresh():
                    continue
                if r.status >= 400:
                    raise _problem(r.status, text)
                return json.loads(text) if text else None
        raise ClientError("authentication failed")

    async def _refresh(self) -> bool:
        """New tokens for the saved session. Each refresh replaces the refresh token, so the
        newest one saved is used: another ``cadenza`` command may have refreshed since this
        one read the file, and presenting a replaced token again ends the session."""
        if self.api_key or not self.refresh_token:
            return False
        saved = _load_saved().get(self.server, {})
        if isinstance(saved.get("refresh_token"), str):
            self.refresh_token = saved["refresh_token"]
        async with self.session.post(
            self.server + "/api/v1/auth/refresh", json={"refresh_token": self.refresh_token}
        ) as r:
            if r.status != 200:
                return False
            tokens = await r.json()
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        save_tokens(self.server, tokens)
        return True

    async def login(self, username: str, password: str) -> Path:
        tokens = await self.call(
            "POST", "/api/v1/auth/login", {"username": username, "password": password}
        )
        return save_tokens(self.server, tokens)

    async def events(self, instance_id: str, after: str | None) -> AsyncIterator[JSONObject]:
        """Server-sent events of one instance, resuming after ``after``; ends at its end."""
        params = {"instance_id": instance_id}
        if after:
            params["after"] = after
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(
            self.server + "/api/v1/events/stream",
            headers=self._headers(),
            params=params,
            timeout=timeout,
        ) as r:
            if r.status >= 400:
                raise _problem(r.status, await r.text())
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    event: JSONObject = json.loads(line[6:])
                    yield event
                    if event.get("type") in _TERMINAL:
                        return


def format_event(e: JSONObject) -> str:
    data = e.get("data")
    fields = data if isinstance(data, dict) else {}
    what = ""
    for key in ("node_id", "task_id", "error", "outputs", "reason"):
        if key in fields and fields[key] not in (None, "", {}):
            value = fields[key]
            what += f" {key}={json.dumps(value, ensure_ascii=False)[:200]}"
    return f"{e.get('seq', ''):>5} {e.get('type', '')}{what}"
