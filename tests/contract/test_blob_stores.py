"""Every blob store keeps the same contract: local files and S3 (against moto's server)."""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.s3_server import s3_endpoint, s3_env

from cadenza.application.payload_blobs import blob_key, instance_prefix, workspace_prefix
from cadenza.application.ports_blobs import BlobStore
from cadenza.bootstrap.store import open_blobs
from cadenza.infrastructure.blobs.files import FileBlobStore
from cadenza.infrastructure.blobs.s3 import S3BlobStore
from cadenza.settings import Settings

__all__ = ["s3_endpoint", "s3_env"]

SHA = "ab" * 32


@pytest.fixture(params=["files", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "files":
        store: BlobStore = FileBlobStore(tmp_path / "blobs")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        request.getfixturevalue("s3_env")
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        settings = Settings(
            database_url="memory://",
            blob_url=f"s3://{bucket}/cadenza/payloads",
            blob_endpoint=endpoint,
            blob_region="us-east-1",
        )
        opened = open_blobs(settings)
        assert isinstance(opened, S3BlobStore)
        opened._client.create_bucket(Bucket=bucket)
        store = opened
    try:
        yield store
    finally:
        await store.close()


async def test_put_get_and_overwrite_with_the_same_content(blobs: BlobStore) -> None:
    key = blob_key("ws", "i1", SHA)
    assert await blobs.get(key) is None
    await blobs.put(key, b'{"a":1}')
    await blobs.put(key, b'{"a":1}')  # a retried batch writes the same key again
    assert await blobs.get(key) == b'{"a":1}'
    big = os.urandom(3 * 1024 * 1024)
    await blobs.put(blob_key("ws", "i1", "cd" * 32), big)
    assert await blobs.get(blob_key("ws", "i1", "cd" * 32)) == big


async def test_prefix_delete_removes_one_instance_or_one_workspace(blobs: BlobStore) -> None:
    for ws, iid in (("ws", "i1"), ("ws", "i2"), ("ws", "i10"), ("other", "i1")):
        for n in range(3):
            await blobs.put(blob_key(ws, iid, f"{n:064x}"), b"x")
    assert await blobs.delete_prefix(instance_prefix("ws", "i1")) == 3
    assert await blobs.get(blob_key("ws", "i1", f"{0:064x}")) is None
    assert await blobs.get(blob_key("ws", "i10", f"{0:064x}")) == b"x"  # not a string prefix
    assert await blobs.get(blob_key("other", "i1", f"{0:064x}")) == b"x"
    assert await blobs.delete_prefix(instance_prefix("ws", "nope")) == 0
    assert await blobs.delete_prefix(workspace_prefix("ws")) == 6
    assert await blobs.get(blob_key("other", "i1", f"{1:064x}")) == b"x"


async def test_older_than_lists_candidates_and_delete_removes_them(blobs: BlobStore) -> None:
    keys = [blob_key("ws", "i1", f"{n:064x}") for n in range(3)]
    for key in keys:
        await blobs.put(key, b"y")
    future = time.time() + 3600
    found = await blobs.older_than(future, 10)
    assert sorted(found) == sorted(keys)
    assert len(await blobs.older_than(future, 2)) == 2
    assert await blobs.older_than(time.time() - 3600, 10) == []
    assert await blobs.delete([keys[0], blob_key("ws", "i1", "ee" * 32)]) >= 1
    assert await blobs.get(keys[0]) is None
    assert await blobs.get(keys[1]) == b"y"


async def test_files_are_private_and_keys_stay_inside_the_root(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    key = blob_key("ws", "i1", SHA)
    await store.put(key, b"secret")
    path = tmp_path / "blobs" / "ws" / "i1" / SHA
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for d in (tmp_path / "blobs", tmp_path / "blobs" / "ws", tmp_path / "blobs" / "ws" / "i1"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [SHA]  # no temporary file left
    for bad in ("../x", "ws/../../x", "/etc/passwd", "ws//x", ""):
        with pytest.raises(ValueError, match="plain parts"):
            await store.get(bad)
    with pytest.raises(ValueError, match="plain parts"):
        await store.delete_prefix("../")


def test_where_blobs_go_by_default(tmp_path: Path) -> None:
    db = tmp_path / "data" / "cadenza.db"
    on_sqlite = open_blobs(Settings(database_url=f"sqlite+aiosqlite:///{db}"))
    assert isinstance(on_sqlite, FileBlobStore)
    assert on_sqlite.root == Path(f"{db}.blobs")
    chosen = open_blobs(Settings(database_url="postgresql://h/db", blob_dir=str(tmp_path / "b")))
    assert isinstance(chosen, FileBlobStore)
    assert chosen.root == tmp_path / "b"
    by_url = open_blobs(Settings(database_url="postgresql://h/db", blob_url=f"file://{tmp_path}"))
    assert isinstance(by_url, FileBlobStore)
    assert by_url.root == tmp_path
    assert open_blobs(Settings(database_url="postgresql://h/db")) is None  # offload off
    with pytest.raises(ValueError, match="CADENZA_BLOB_URL"):
        open_blobs(Settings(database_url="memory://", blob_url="ftp://x"))


async def test_instance_prefixes_page_in_key_order_with_their_newest_time(
    blobs: BlobStore,
) -> None:
    owners = [("ws", "i1"), ("ws", "i2"), ("ws", "i3"), ("zz", "i1"), ("a b", "x/y")]
    for ws, iid in owners:
        for n in range(2):
            await blobs.put(blob_key(ws, iid, f"{n:064x}"), b"z")
    everything = [instance_prefix(ws, iid) for ws, iid in owners]
    first = await blobs.instances("", 2)
    assert [p for p, _ in first] == sorted(everything)[:2]
    rest = await blobs.instances(first[-1][0], 10)
    assert [p for p, _ in first + rest] == sorted(everything)
    assert await blobs.instances(sorted(everything)[-1], 10) == []
    now = time.time()
    assert all(now - 600 < at < now + 600 for _, at in first + rest)
