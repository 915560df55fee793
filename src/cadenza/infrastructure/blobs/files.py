"""Blobs as files under one directory: the default store, next to the SQLite database.

A key ``<workspace>/<instance>/<sha256>`` is the file's path below the root (its parts are
percent-quoted by ``payload_blobs.blob_key``: no separator, no ``..``), so deleting an
instance or a workspace is deleting one directory. Directories are created 0700 and files
0600 (payloads may hold anything a workflow saw); a file is written to a temporary name in
its directory, flushed and renamed, so a reader (or a crash) never sees half a blob. The
filesystem calls run on a worker thread: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path


class FileBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise ValueError(f"blob key {key!r} is not a relative path of plain parts")
        return self.root.joinpath(*parts)

    def _prefix_path(self, prefix: str) -> Path:
        parts = [p for p in prefix.split("/") if p]
        if not parts or any(p in (".", "..") or "\\" in p for p in parts):
            raise ValueError(f"blob prefix {prefix!r} is not a relative path of plain parts")
        return self.root.joinpath(*parts)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    def _put(self, path: Path, data: bytes) -> None:
        if path.exists():  # content-addressed: the same key is the same bytes
            return
        _mkdirs(self.root, path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def delete_prefix(self, prefix: str) -> int:
        path = self._prefix_path(prefix)

        def remove() -> int:
            if not path.is_dir():
                return 0
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path, ignore_errors=True)
            return count

        return await asyncio.to_thread(remove)

    async def older_than(self, before: float, limit: int) -> list[str]:
        def scan() -> list[str]:
            found: list[str] = []
            if not self.root.is_dir():
                return found
            for p in self.root.rglob("*"):
                if len(found) >= limit:
                    break
                if p.is_file() and not p.name.startswith(".tmp-") and p.stat().st_mtime < before:
                    found.append(p.relative_to(self.root).as_posix())
            return found

        return await asyncio.to_thread(scan)

    async def instances(self, after: str, limit: int) -> list[tuple[str, float]]:
        def scan() -> list[tuple[str, float]]:
            found: list[tuple[str, float]] = []
            if not self.root.is_dir():
                return found
            for ws in sorted(os.listdir(self.root)):
                ws_dir = self.root / ws
                if ws.startswith(".") or not ws_dir.is_dir() or f"{ws}/\uffff" < after:
                    continue
                for iid in sorted(os.listdir(ws_dir)):
                    prefix = f"{ws}/{iid}/"
                    if prefix <= after or not (ws_dir / iid).is_dir():
                        continue
                    times = [f.stat().st_mtime for f in (ws_dir / iid).iterdir() if f.is_file()]
                    found.append((prefix, max(times, default=0.0)))
                    if len(found) >= limit:
                        return found
            return found

        return await asyncio.to_thread(scan)

    async def delete(self, keys: list[str]) -> int:
        paths = [self._path(k) for k in keys]

        def remove() -> int:
            gone = 0
            for p in paths:
                try:
                    p.unlink()
                    gone += 1
                except FileNotFoundError:
                    continue
            return gone

        return await asyncio.to_thread(remove)

    async def close(self) -> None:
        return None


def _mkdirs(root: Path, directory: Path) -> None:
    """``directory`` and its parents below ``root``, each created 0700 (``mkdir(parents=
    True)`` would give the parents the default mode); ``root`` itself too when missing."""
    if not root.is_dir():
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    at = root
    for part in directory.relative_to(root).parts:
        at = at / part
        if not at.is_dir():
            at.mkdir(mode=0o700, exist_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (the directory entry), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
