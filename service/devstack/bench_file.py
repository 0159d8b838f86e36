"""BENCHMARKS.md as a set of replaceable sections: each benchmark (`eibert bench`'s teacher, model, edge and
cloud sections, `make load`'s load section) rewrites only the text between its own markers, so one can be
rerun without touching the figures the others measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchRun:
    """What `eibert bench` hands every section: the bundle to measure, the STS data for the quality column,
    the cache directory (the teacher's ONNX export) and the command line the section records."""

    bundle: Path
    sts_data: Path
    cache: Path
    command: str


# A section: one run's figures as the Markdown body between its markers. Each part that measures something
# (`model_store.cli`, `loadtests.sections`) names its sections in a `BENCH_SECTIONS` dict of these; the CLI
# package (`eibert/bench.py`) assembles them into `eibert bench`.
Section = Callable[[BenchRun], str]

HEADER = (
    "# eibert benchmarks\n\nWritten by `make bench` (`eibert bench`); every section records the command and"
    " the machine that produced it. Do not edit by hand.\n"
)


def replace_section(doc: str, name: str, body: str) -> str:
    """Swap the text between `<!-- bench:name -->` markers, appending the section if it is new."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(doc):
        return pattern.sub(lambda _m: block, doc)
    return doc.rstrip() + "\n\n" + block + "\n"


def write_section(out: Path, name: str, body: str) -> None:
    doc = out.read_text() if out.exists() else HEADER
    out.write_text(replace_section(doc, name, body))


def command_line(args: argparse.Namespace) -> str:
    """The command a section was measured with, as the user typed it (`eibert/cli.py` sets `args.argv`)."""
    return ("eibert " + " ".join(shlex.quote(a) for a in args.argv)).strip()


def machine_line() -> str:
    """The machine a section was measured on, as each section's header line names it."""
    return f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"
