"""Blob stores for offloaded payloads (the ``application.ports_blobs.BlobStore`` port)."""
