"""Blobs (bundle archives and each bundle file), content-addressed by sha256: kept in the `Store`, served from a
local cache `root/ab/abcdef…`.

The store is the only source of truth: every replica on one store can serve every upload, and a replica's disk
holds nothing that cannot be thrown away. The cache exists so downloads can be served as files (Range
requests, 206/416, no blob bytes held in memory per request): a miss reads the store once, checks that the
bytes hash to their name and writes them under it. Archives registered before blobs lived in the store keep
their legacy `….tar.gz` cache name and are served from the cache of the replica that had them.

Cache files are written to a temp file in the same directory, fsynced, then renamed: a reader (or a crash)
sees either no file or the whole blob, never a prefix. Equal bytes share one file, so re-uploads cost nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import anyio

from service.cloud.errors import StoreError
from service.cloud.store import Store
from service.cloud.store.base import check_sha256


class BlobStore:
    """The blobs of one `Store`, with a local cache under `root` that any replica may lose at any time."""

    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = Path(root)

    def cache_path(self, sha256: str) -> Path:
        path = self.root / check_sha256(sha256)[:2] / sha256
        legacy = path.with_name(f"{sha256}.tar.gz")
        return legacy if not path.exists() and legacy.exists() else path

    async def put(self, data: bytes) -> str:
        """Store `data` (the store first: once this returns, every replica can serve it); return its sha256."""
        sha = await self.store.put_blob(data)
        await anyio.to_thread.run_sync(self._cache, sha, data)
        return sha

    async def path(self, sha256: str) -> Path | None:
        """A local file holding the blob, fetched from the store on a cache miss; None if the store has none."""
        cached = self.cache_path(sha256)
        if cached.is_file():
            return cached
        data = await self.store.get_blob(sha256)
        if data is None:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:  # the store computed the name, so this is corruption
            raise StoreError(f"blob {sha256} in the store does not hash to its name")
        return await anyio.to_thread.run_sync(self._cache, sha256, data)

    def _cache(self, sha256: str, data: bytes) -> Path:
        final = self.cache_path(sha256)
        if final.is_file() and final.stat().st_size == len(data):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
        return final
