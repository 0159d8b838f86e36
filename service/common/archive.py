"""Bundle archives for transport (the admin upload to the cloud): a flat tar.gz.

Unpacking treats the archive as hostile: only regular files with plain names, no links, no directories, no
duplicates, bounded member count and sizes. Python's tarfile `data` filter would also refuse traversal, but
a bundle is three known files, so an allow-list is both stricter and simpler.

Why the unpacking walk is hand-written instead of `tarfile.open(...).getmembers()`: tarfile reads a PAX or
GNU long-name header's whole payload into memory before anything can look at its size (a 1 GB header that
gzip packs into 1 MB costs 1 GB), and gzip's reader has no output cap. Here the gzip stream is inflated with
`zlib.decompressobj(...).decompress(data, max_length)` in bounded steps under a total-expansion cap, and each
512-byte header block is parsed by `tarfile.TarInfo.frombuf` (the library's own field and checksum parser)
and its size checked *before* its payload is read; member data is streamed to disk in chunks. Extended
headers are allowed only up to `MAX_EXTENDED_HEADER_BYTES`, may not rename or resize a member (their
`path`, `linkpath`, `size` and sparse records would make this walk and other tar readers disagree about the
archive) and GNU long names are refused outright (no bundle file needs one). Memory stays O(chunk) whatever
the archive claims.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from service.common.contract import BUNDLE_FILES, MANIFEST_FILE, OPTIONAL_FILES
from service.common.errors import BundleError

MAX_MEMBERS = 8
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 96 * 1024 * 1024
ALLOWED_NAMES = frozenset((*BUNDLE_FILES, *OPTIONAL_FILES, MANIFEST_FILE))
MAX_EXTENDED_HEADER_BYTES = 4096  # a PAX record set for mtime/uid/charset is ~100 bytes
MAX_HEADERS = 4 * MAX_MEMBERS  # header blocks of any kind (members + extended headers)
# Whatever an archive inflates to, counted across headers, data, padding and trailer.
MAX_EXPANDED_BYTES = MAX_TOTAL_BYTES + (MAX_HEADERS + 32) * tarfile.BLOCKSIZE + tarfile.RECORDSIZE
_CHUNK = 1 << 16
_EXTENDED_TYPES = frozenset((tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK))
_REGULAR_TYPES = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE))
# PAX records that change which file a member is or how long it is: refused (see the module docstring).
_PAX_IDENTITY_KEYS = frozenset(("path", "linkpath", "size"))


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
            if name in OPTIONAL_FILES and not path.exists():
                continue
            if not path.is_file():
                raise BundleError(f"{bundle_dir}: cannot pack, {name} is missing")
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _BoundedGunzip:
    """Reads the inflated bytes of a gzip stream on demand, never more than `cap` in all.

    One gzip member only (what `pack_bundle` writes); trailing bytes after it are refused, and a stream that
    ends early is "truncated", so corruption is reported instead of silently shortening a file.
    """

    def __init__(self, data: bytes, cap: int) -> None:
        if data[:2] != b"\x1f\x8b":
            raise BundleError("not a gzip-compressed tar archive (no gzip magic)")
        self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._input = data
        self._buf = bytearray()
        self._cap = cap
        self.produced = 0

    def _inflate(self, want: int) -> None:
        while len(self._buf) < want and not self._z.eof:
            room = self._cap + 1 - self.produced
            try:
                out = self._z.decompress(self._input, min(_CHUNK, room))
            except zlib.error as exc:
                raise BundleError(f"archive is truncated or corrupt: {exc}") from exc
            self._input = self._z.unconsumed_tail
            self.produced += len(out)
            if self.produced > self._cap:
                raise BundleError(f"archive inflates to more than {self._cap:,} bytes; that is the limit")
            self._buf += out
            if not out and not self._input and not self._z.eof:
                raise BundleError("archive is truncated or corrupt: the gzip stream ends early")
        if self._z.eof and self._z.unused_data:
            raise BundleError("archive has bytes after its gzip stream")

    def read(self, n: int) -> bytes:
        """Exactly `n` bytes, or fewer only at the end of the stream."""
        self._inflate(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def drain(self) -> None:
        """Inflate (and drop) the rest, still under the cap, so the gzip CRC and length get checked."""
        while not self._z.eof:
            self._buf.clear()
            self._inflate(_CHUNK)
        self._buf.clear()


def _check_pax(payload: bytes) -> None:
    """Parse PAX records (`"%d %s=%s\\n"`) and refuse the ones that rename or resize a member."""
    pos = 0
    while pos < len(payload):
        if payload[pos] == 0:  # NUL padding after the last record
            break
        space = payload.find(b" ", pos, pos + 20)
        try:
            length = int(payload[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        record = payload[pos : pos + length]
        if length <= space - pos + 1 or len(record) != length or not record.endswith(b"\n") or b"=" not in record:
            raise BundleError("archive has a malformed PAX extended header")
        key = record[space - pos + 1 : record.index(b"=")].decode("utf-8", "replace")
        if key in _PAX_IDENTITY_KEYS or key.startswith("GNU.sparse"):
            raise BundleError(f"archive has a PAX {key!r} record; bundle members may not be renamed or resized")
        pos += length


def _blocks(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _headers(stream: _BoundedGunzip) -> Iterator[tarfile.TarInfo]:
    """Yield each regular member's header; the caller must consume exactly `_blocks(info.size)` bytes."""
    for _ in range(MAX_HEADERS + 1):
        block = stream.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE:
            raise BundleError("archive is truncated or corrupt: it ends inside a header")
        if block.count(0) == tarfile.BLOCKSIZE:
            return  # end-of-archive marker
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise BundleError(f"archive is truncated or corrupt: {exc}") from exc
        if info.size < 0:
            raise BundleError(f"archive header {info.name!r} has a negative size")
        if info.type in _EXTENDED_TYPES:
            if info.size > MAX_EXTENDED_HEADER_BYTES:
                raise BundleError(
                    f"archive has a {info.size:,}-byte extended header (PAX or GNU long name); "
                    f"the limit is {MAX_EXTENDED_HEADER_BYTES:,} bytes"
                )
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                raise BundleError("archive has a GNU long name or long link header; bundle file names are short")
            payload = stream.read(_blocks(info.size))
            if len(payload) < info.size:
                raise BundleError("archive is truncated or corrupt: it ends inside an extended header")
            _check_pax(payload[: info.size])
            continue
        if info.type not in _REGULAR_TYPES:
            raise BundleError(f"archive member {info.name!r} is not a regular file (links and dirs refused)")
        yield info
    raise BundleError(f"archive has more than {MAX_HEADERS} headers; that is the limit")


def unpack_bundle(archive: bytes, dest: Path) -> Path:
    """Extract into `dest` (created, must be empty); raise BundleError for anything but the bundle's files."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BundleError(f"{dest}: unpack target is not empty")
    stream = _BoundedGunzip(archive, MAX_EXPANDED_BYTES)
    seen: set[str] = set()
    total = 0
    for m in _headers(stream):
        if m.name not in ALLOWED_NAMES:
            raise BundleError(f"archive member {m.name!r} is not one of {sorted(ALLOWED_NAMES)}")
        if m.name in seen:
            raise BundleError(f"archive member {m.name!r} appears twice")
        if m.size > MAX_MEMBER_BYTES:
            raise BundleError(f"archive member {m.name!r} is {m.size:,} bytes; limit {MAX_MEMBER_BYTES:,}")
        total += m.size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(f"archive unpacks to more than {MAX_TOTAL_BYTES:,} bytes")
        seen.add(m.name)
        left = m.size
        with (dest / m.name).open("xb") as out:
            while left:
                chunk = stream.read(min(_CHUNK, left))
                if not chunk:
                    raise BundleError(f"archive member {m.name!r} is truncated")
                out.write(chunk)
                left -= len(chunk)
        stream.read(_blocks(m.size) - m.size)  # padding to the block boundary
    missing = ALLOWED_NAMES - set(OPTIONAL_FILES) - seen
    if missing:
        raise BundleError(f"archive lacks {sorted(missing)}")
    stream.drain()
    return dest
