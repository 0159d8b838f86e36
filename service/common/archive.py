"""Bundle archives for transport (upload to the cloud, download to a device): a flat tar.gz.

Unpacking treats the archive as hostile: only regular files with plain names, no links, no directories, no
duplicates, bounded member count and sizes. Python's tarfile `data` filter would also refuse traversal, but
a bundle is three known files, so an allow-list is both stricter and simpler.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from service.common.contract import BUNDLE_FILES, MANIFEST_FILE
from service.common.errors import BundleError

MAX_MEMBERS = 8
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 96 * 1024 * 1024
ALLOWED_NAMES = frozenset((*BUNDLE_FILES, MANIFEST_FILE))


def pack_bundle(bundle_dir: Path) -> bytes:
    """A deterministic tar.gz of the bundle's files (fixed order, mtime 0), so equal bundles give equal bytes."""
    buf = io.BytesIO()
    # gzip stamps the current time in its header unless told otherwise; mtime=0 keeps the bytes stable.
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(ALLOWED_NAMES):
            path = Path(bundle_dir) / name
            if not path.is_file():
                raise BundleError(f"{bundle_dir}: cannot pack, {name} is missing")
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack_bundle(archive: bytes, dest: Path) -> Path:
    """Extract into `dest` (created, must be empty); raise BundleError for anything but the bundle's files."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BundleError(f"{dest}: unpack target is not empty")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz")  # noqa: SIM115 - closed by `with tar` below
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"not a gzip-compressed tar archive: {exc}") from exc
    seen: set[str] = set()
    total = 0
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BundleError(f"archive is truncated or corrupt: {exc}") from exc
        if len(members) > MAX_MEMBERS:
            raise BundleError(f"archive has {len(members)} members; at most {MAX_MEMBERS} allowed")
        for m in members:
            if not m.isreg():
                raise BundleError(f"archive member {m.name!r} is not a regular file (links and dirs refused)")
            if m.name not in ALLOWED_NAMES:
                raise BundleError(f"archive member {m.name!r} is not one of {sorted(ALLOWED_NAMES)}")
            if m.name in seen:
                raise BundleError(f"archive member {m.name!r} appears twice")
            if m.size > MAX_MEMBER_BYTES:
                raise BundleError(f"archive member {m.name!r} is {m.size} bytes; limit {MAX_MEMBER_BYTES}")
            total += m.size
            if total > MAX_TOTAL_BYTES:
                raise BundleError(f"archive unpacks to more than {MAX_TOTAL_BYTES} bytes")
            seen.add(m.name)
            src = tar.extractfile(m)
            if src is None:  # pragma: no cover - isreg() members always have data
                raise BundleError(f"archive member {m.name!r} has no data")
            try:
                data = src.read()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise BundleError(f"archive is truncated or corrupt: {exc}") from exc
            if len(data) != m.size:
                raise BundleError(f"archive member {m.name!r} is truncated")
            (dest / m.name).write_bytes(data)
    missing = ALLOWED_NAMES - seen
    if missing:
        raise BundleError(f"archive lacks {sorted(missing)}")
    return dest
