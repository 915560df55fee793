"""The engine with its payloads offloaded to S3 (moto's S3 server on loopback): the object is
in the bucket under the instance's prefix, the engine and a replay see the real value, and
retention's prefix delete empties it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import boto3
from tests.integration.engine_harness import doc, engine_on, start
from tests.s3_server import s3_endpoint, s3_env

from cadenza.application.payload_blobs import instance_prefix
from cadenza.domain.instance import Instance
from cadenza.domain.status import InstanceStatus
from cadenza.infrastructure.blobs.s3 import S3BlobStore
from cadenza.infrastructure.sql.retention import purge_blobs
from cadenza.infrastructure.sql.store import SqlStore

__all__ = ["s3_endpoint", "s3_env"]


async def test_an_instance_offloads_to_s3_and_reads_back(
    s3_endpoint: str, s3_env: None, tmp_path: Path
) -> None:
    bucket = f"c-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint)
    try:
        client.create_bucket(Bucket=bucket)
        text = "s3-" + "s" * 2000
        flow = doc(
            [{"id": "a", "type": "transform", "config": {"output": "{{ inputs.text }}"}}],
            outputs={"text": "{{ nodes.a.output }}"},
        )
        options: dict[str, object] = {
            "payload_offload_bytes": 256,
            "blob_url": f"s3://{bucket}/cadenza",
            "blob_endpoint": s3_endpoint,
        }
        async with engine_on(f"sqlite:///{tmp_path}/c.db", **options) as rt:
            assert isinstance(rt.store, SqlStore)
            assert isinstance(rt.store.blobs, S3BlobStore)
            iid = await start(rt, flow, {"text": text})
            done = await asyncio.wait_for(rt.engine.wait_finished(iid), 30)
            assert done.status is InstanceStatus.COMPLETED
            assert done.outputs == {"text": text}
            replayed = Instance.replay(iid, [e for _, e in await rt.store.journal(iid)])
            assert replayed.outputs == {"text": text}
            listed = client.list_objects_v2(Bucket=bucket, Prefix=f"cadenza/default/{iid}/")
            keys = [o["Key"] for o in listed.get("Contents", [])]
            assert keys, "nothing offloaded to the bucket"
            body = client.get_object(Bucket=bucket, Key=keys[0])["Body"]
            try:
                assert text.encode() in body.read()
            finally:
                body.close()
            assert await purge_blobs(rt.store.blobs, [("default", iid)]) == len(keys)
            gone = client.list_objects_v2(
                Bucket=bucket, Prefix=f"cadenza/{instance_prefix('default', iid)}"
            )
            assert gone.get("KeyCount", 0) == 0
    finally:
        client.close()
