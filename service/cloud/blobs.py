"""Blobs on disk, content-addressed by sha256: `root/ab/abcdef…` (bundle archives and each bundle file).

Devices fetch a bundle's files from here by the sha256 their signed offer names (`GET /v1/blobs/{sha256}`);
archives registered before files were stored one by one keep their legacy `….tar.gz` name.

Written to a temp file in the same directory, fsynced, then renamed: a reader (or a crash) sees either no
blob or the whole blob, never a prefix. Equal bytes share one file, so re-uploads cost nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        path = self.root / sha256[:2] / sha256
        legacy = path.with_name(f"{sha256}.tar.gz")
        return legacy if not path.exists() and legacy.exists() else path

    def put(self, data: bytes) -> tuple[str, Path]:
        """Store `data`; return its sha256 and path. Idempotent."""
        sha = hashlib.sha256(data).hexdigest()
        final = self.path(sha)
        if final.is_file() and final.stat().st_size == len(data):
            return sha, final
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
        return sha, final

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()
