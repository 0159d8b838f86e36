"""Peak resident memory of this process across a block: the "grows by less than 200 MB" check of issue 11.

Linux lets a process reset its own high-water mark (`echo 5 > /proc/self/clear_refs`), so the peak measured
is the block's alone, whatever earlier tests allocated. A child process (the model trial) is not counted,
which is the point: only the process that parses hostile input must stay small.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STATUS = Path("/proc/self/status")


def _kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB$", STATUS.read_text(), re.MULTILINE)
    assert match is not None, f"{field} missing from {STATUS}"
    return int(match.group(1))


@dataclass
class Growth:
    mib: float = 0.0


@contextmanager
def peak_rss_growth() -> Iterator[Growth]:
    """`with peak_rss_growth() as g: ...` then `g.mib` is the peak RSS above the start, in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    start = _kib("VmRSS")
    growth = Growth()
    try:
        yield growth
    finally:
        growth.mib = (_kib("VmHWM") - start) / 1024
