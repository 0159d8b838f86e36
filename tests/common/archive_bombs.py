"""Hostile bundle archives built at test time: a tar header that claims a huge extended header, gzip-packed
to about a thousandth of its size (nothing large is committed, nothing large is held uncompressed)."""

from __future__ import annotations

import functools
import struct
import tarfile
import zlib

GIB = 1 << 30
_MIB_ZEROS = bytes(1 << 20)


@functools.cache
def _deflated_zeros(n: int) -> bytes:
    """A complete raw-deflate stream of `n` zero bytes (built once per session: ~3 s for 1 GiB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [c.compress(_MIB_ZEROS) for _ in range(n // len(_MIB_ZEROS))]
    out.append(c.compress(bytes(n % len(_MIB_ZEROS))))
    out.append(c.flush())
    return b"".join(out)


def gzip_of_header_then_zeros(header: bytes, zeros: int) -> bytes:
    """gzip of `header` followed by `zeros` zero bytes: the header's deflate blocks end on a full flush, so
    the cached zero stream can follow them as is; CRC and length are those of the whole payload."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(zeros // len(_MIB_ZEROS)):
        crc = zlib.crc32(_MIB_ZEROS, crc)
    crc = zlib.crc32(bytes(zeros % len(_MIB_ZEROS)), crc)
    trailer = struct.pack("<II", crc, (len(header) + zeros) & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + _deflated_zeros(zeros) + trailer


def extended_header_bomb(kind: bytes = tarfile.XHDTYPE, size: int = GIB) -> bytes:
    """A tar whose first header is a PAX ('x') or GNU long-name ('L') header of `size` bytes; ~1 MB packed.
    `tarfile` reads such a header's whole payload into memory before looking at it."""
    info = tarfile.TarInfo("././@PaxHeader" if kind in (tarfile.XHDTYPE, tarfile.XGLTYPE) else "././@LongLink")
    info.type = kind
    info.size = size
    return gzip_of_header_then_zeros(info.tobuf(format=tarfile.USTAR_FORMAT), size)
